//! The HTTP edge: idle and trickling connections are cut off by the header and body
//! timeouts, connections beyond the cap are closed at once, requests beyond the cap are
//! answered 503, and none of it stops a genuine request from being answered.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn addr(server: &TestServer) -> String {
    server.base_url.trim_start_matches("http://").to_owned()
}

/// Whether the server has closed `stream` (EOF or reset), reading whatever it sent first.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn genuine(server: &TestServer) {
    let (status, response) = tokio::time::timeout(
        Duration::from_secs(5),
        server.post_signed(&PKI, bytes(&request_at("launch", server.now()))),
    )
    .await
    .expect("a genuine request is answered");
    assert_eq!(status, 200, "{response}");
}

#[tokio::test]
async fn idle_and_trickling_connections_are_cut_off_and_do_not_stop_a_genuine_request() {
    let server = TestServer::start_with(&PKI, |args| {
        args.header_timeout = 2;
        args.body_timeout = 2;
    })
    .await;
    let address = addr(&server);
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    // Request heads that arrive a byte at a time, and bodies that do.
    let mut trickling = Vec::new();
    for i in 0..400 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let start = if i % 2 == 0 {
            "POST /alexa HTTP/1.1\r\nHost: x\r\n".to_owned()
        } else {
            "POST /alexa HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 4000\r\n\r\n{"
                .to_owned()
        };
        stream.write_all(start.as_bytes()).await.unwrap();
        trickling.push(stream);
    }
    let dripping = tokio::spawn(async move {
        for _ in 0..30 {
            for stream in &mut trickling {
                let _ = stream.write_all(b"x").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        trickling
    });
    // Eight hundred slow clients: the genuine request is answered all the same.
    genuine(&server).await;

    // And the slow ones do not get to stay: the server closes them after its timeouts.
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(6))
                .await
                .is_some(),
            "an idle connection is closed after the header timeout"
        );
    }
    let mut trickling = dripping.await.unwrap();
    let mut timed_out_bodies = 0;
    for stream in &mut trickling {
        let said = closed_within(stream, Duration::from_secs(6))
            .await
            .expect("a trickling connection is closed");
        if said.starts_with("HTTP/1.1 408") {
            timed_out_bodies += 1;
        }
    }
    assert_eq!(
        timed_out_bodies, 200,
        "a body that does not arrive in time gets 408"
    );
    genuine(&server).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let server = TestServer::start_with(&PKI, |args| {
        args.max_connections = 16;
        args.header_timeout = 2;
    })
    .await;
    let address = addr(&server);
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(1))
            .await
            .is_some(),
        "the seventeenth connection is closed at once"
    );
    // The held ones send nothing, so the header timeout frees their places.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    genuine(&server).await;
    drop(held);
}

#[tokio::test]
async fn requests_beyond_the_cap_are_answered_503() {
    let server = TestServer::start_with(&PKI, |args| {
        args.max_requests = 1;
        args.body_timeout = 3;
    })
    .await;
    // One request in flight: its body is still arriving.
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    slow.write_all(
        b"POST /alexa HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 4000\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, response) = server
        .post_signed(&PKI, bytes(&request_at("launch", server.now())))
        .await;
    assert_eq!(status, 503, "{response}");
    assert_eq!(response["reason"], "too-many-requests");
    // Once it is done (here: timed out), the next one is answered.
    let said = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    genuine(&server).await;
}

#[tokio::test]
async fn a_companion_body_must_arrive_whole_within_the_body_timeout_and_be_small() {
    let server = TestServer::start_with(&PKI, |args| {
        args.body_timeout = 2;
    })
    .await;
    // One byte a second never trips a per-chunk timeout; the whole body must still come in
    // time.
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/companion/pair HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{",
        )
        .await
        .unwrap();
    // Still dripping, it is answered 408 once the body timeout has passed in all.
    let started = tokio::time::Instant::now();
    let mut said = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..10 {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(900), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                said.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("HTTP/1.1 408"), "{said:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered while the client was still sending"
    );

    // A body far larger than any pairing code is refused without being read whole.
    let big = format!("{{\"code\": \"{}\"}}", "x".repeat(64 * 1024));
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/companion/pair", server.base_url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_is_cut_off() {
    let server = TestServer::start_with(&PKI, |args| {
        args.header_timeout = 60;
        args.body_timeout = 2;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(addr(&server).parse().unwrap())
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Pipelined requests, never read: the server's writes stop making progress.
    let pipelining = tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        for _ in 0..200 {
            if writer.write_all(&request).await.is_err() {
                break;
            }
        }
        // Keep the connection's sending half open (dropping it would end the requests).
        std::future::pending::<()>().await;
        drop(writer);
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    // By now the server has given up on the connection: what is buffered drains, then it
    // ends (a connection still served would keep answering, then wait for more).
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    pipelining.abort();
    assert!(ended, "the connection is closed after the body timeout");
    genuine(&server).await;
}
