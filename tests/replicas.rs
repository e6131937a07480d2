//! Two replicas on one PostgreSQL database, as a deployment behind a load balancer runs
//! them: the right code for a challenge is said to both at the same moment, 200 times (a
//! stop, then a start, of the same instance, each its own challenge). Exactly one of each
//! pair runs the operation, so AWS sees exactly 200 changes; the companion stream on each
//! replica hears every challenge created.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::scene::*;
use common::*;
use serde_json::{Value, json};

const TRIALS: usize = 200;

/// A device paired through `server`, listening to its event stream; counts the
/// challenges it hears created until `want` or the time is up.
async fn listen(server: &TestServer, want: usize) -> tokio::task::JoinHandle<usize> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(server.db.dir.path())
        .env("VOXGATE_DATABASE_URL", &server.db.url)
        .args(["pair", "--user", "alice", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, paired) = server
        .post_companion(
            "/api/v1/companion/pair",
            json!({"code": code["code"]}).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{paired}");
    let token = paired["token"].as_str().unwrap().to_owned();
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/v1/companion/events", server.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut created = 0;
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
        while created < want {
            let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await;
            let Ok(Ok(Some(chunk))) = chunk else { break };
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if block.lines().any(|l| l == "event: created") {
                    created += 1;
                }
            }
        }
        created
    })
}

#[tokio::test]
async fn the_same_code_on_two_replicas_runs_each_operation_once() {
    let s = scene(Backend::Postgres).await;
    let replica = TestServer::start_on(
        &PKI,
        s.server.db.share(),
        common::aws::sdk_config(&s.proxy.url),
        voxgate::clock::ManualClock::new(s.server.now()),
        |_| {},
    )
    .await;
    let heard_here = listen(&s.server, TRIALS).await;
    let heard_there = listen(&replica, TRIALS).await;

    let mut ran = 0;
    for trial in 0..TRIALS {
        let (intent, done) = if trial % 2 == 0 {
            ("StopInstanceIntent", "Stopping web-1 now.")
        } else {
            ("StartInstanceIntent", "Starting web-1 now.")
        };
        // Alexa's request for the operation lands on either replica.
        let holder = if trial % 3 == 0 { &replica } else { &s.server };
        let held = holder.say(critical(holder, ALICE, intent, "web-1")).await;
        let id = challenge_id(&held);
        let code = code_for(&s, &id).await;
        let (a, b) = tokio::join!(
            s.server.say(say_code(&s.server, ALICE, &id, &code)),
            replica.say(say_code(&replica, ALICE, &id, &code)),
        );
        let answers = [speech(&a), speech(&b)];
        let runs = answers.iter().filter(|a| *a == done).count();
        assert_eq!(runs, 1, "trial {trial}: {answers:?}");
        ran += runs;
    }
    assert_eq!(ran, TRIALS);
    assert_eq!(
        count(&s.proxy, "StopInstances") + count(&s.proxy, "StartInstances"),
        TRIALS,
        "AWS saw exactly one change per challenge"
    );
    let outcomes = outcomes(&s.server).await;
    assert_eq!(outcomes.iter().filter(|o| *o == "executed").count(), TRIALS);
    let records = s
        .server
        .store
        .audit_records(None, 0, 100_000)
        .await
        .unwrap();
    assert_eq!(s.server.gate.audit().verify(&records), Ok(()));
    assert_eq!(
        heard_here.await.unwrap(),
        TRIALS,
        "the stream on the first replica"
    );
    assert_eq!(
        heard_there.await.unwrap(),
        TRIALS,
        "the stream on the second replica"
    );
}
