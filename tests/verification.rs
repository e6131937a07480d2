//! Request verification through a real HTTP server: every rule of Amazon's list, each
//! failure class on its own, and the success path end to end.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::json;
use time::Duration;

/// Asserts a refusal: 400 with this reason code, and no skill answer in the body.
fn assert_refused(result: &(u16, serde_json::Value), reason: &str) {
    assert_eq!(result.0, 400, "expected a 400 for {reason}, got {result:?}");
    assert_eq!(result.1["reason"], reason, "{result:?}");
    assert!(
        result.1.get("response").is_none(),
        "a refused request runs nothing"
    );
}

#[tokio::test]
async fn a_signed_launch_request_is_answered() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let (status, response) = server.post_signed(&PKI, body).await;
    assert_eq!(status, 200, "{response}");
    assert!(
        speech(&response).contains("What would you like to do"),
        "{response}"
    );
    assert_eq!(response["response"]["shouldEndSession"], false);
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let headers = vec![
        ("SIGNATURECERTCHAINURL", CERT_URL.to_owned()),
        ("signature-256", PKI.sign(&body)),
    ];
    let (status, response) = server.post(body, &headers).await;
    assert_eq!(status, 200, "{response}");
}

#[tokio::test]
async fn amazons_invalid_certificate_urls_are_refused() {
    let server = TestServer::start(&PKI).await;
    let cases = [
        (
            "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "cert-url-scheme",
        ),
        (
            "https://notamazon.com/echo.api/echo-api-cert.pem",
            "cert-url-host",
        ),
        (
            "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
            "cert-url-path",
        ),
        (
            "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
            "cert-url-path",
        ),
        (
            "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
            "cert-url-port",
        ),
        (
            "https://s3.amazonaws.com/echo.api/../other/echo-api-cert.pem",
            "cert-url-path",
        ),
        (
            "https://user@s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "cert-url-credentials",
        ),
        (
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem?v=1",
            "cert-url-query",
        ),
        (
            "s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "cert-url-malformed",
        ),
        // S3 would decode the escape and serve echo-api-cert-4.pem under a new cache key.
        (
            "https://s3.amazonaws.com/echo.api/%65cho-api-cert-4.pem",
            "cert-url-path-characters",
        ),
    ];
    for (url, reason) in cases {
        // A valid chain sits under the URL's name too, so only the URL rule can refuse it.
        if url::Url::parse(url).is_ok() {
            server.install_chain(url, &PKI.chain_pem);
        }
        let body = bytes(&request_at("launch", server.now()));
        let headers = vec![
            ("SignatureCertChainUrl", url.to_owned()),
            ("Signature-256", PKI.sign(&body)),
        ];
        let result = server.post(body, &headers).await;
        assert_refused(&result, reason);
    }
}

#[tokio::test]
async fn amazons_valid_certificate_url_variants_are_accepted() {
    let server = TestServer::start(&PKI).await;
    let variants = [
        "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
        "HTTPS://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
    ];
    // All normalise to the first URL, so one pre-fetched file serves them all.
    server.install_chain(variants[0], &PKI.chain_pem);
    for url in variants {
        let body = bytes(&request_at("launch", server.now()));
        let headers = vec![
            ("SignatureCertChainUrl", url.to_owned()),
            ("Signature-256", PKI.sign(&body)),
        ];
        let (status, response) = server.post(body, &headers).await;
        assert_eq!(status, 200, "{url}: {response}");
    }
}

#[tokio::test]
async fn an_expired_signing_certificate_is_refused() {
    let now = time::OffsetDateTime::now_utc();
    let expired = Pki::new(LeafOptions {
        not_before: now - Duration::days(60),
        not_after: now - Duration::days(1),
        ..LeafOptions::default()
    });
    let server = TestServer::start(&expired).await;
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&expired, body).await;
    assert_refused(&result, "cert-expired");
}

#[tokio::test]
async fn a_signing_certificate_not_yet_valid_is_refused() {
    let now = time::OffsetDateTime::now_utc();
    let early = Pki::new(LeafOptions {
        not_before: now + Duration::days(1),
        not_after: now + Duration::days(30),
        ..LeafOptions::default()
    });
    let server = TestServer::start(&early).await;
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&early, body).await;
    assert_refused(&result, "cert-expired");
}

#[tokio::test]
async fn a_cached_chain_is_rechecked_on_every_use() {
    let now = time::OffsetDateTime::now_utc();
    let short_lived = Pki::new(LeafOptions {
        not_before: now - Duration::days(1),
        not_after: now + Duration::minutes(10),
        ..LeafOptions::default()
    });
    let server = TestServer::start(&short_lived).await;
    let body = bytes(&request_at("launch", server.now()));
    let (status, _) = server.post_signed(&short_lived, body).await;
    assert_eq!(status, 200, "valid while the certificate is");

    // Twenty minutes later the same (cached) certificate has expired.
    server.clock.advance(Duration::minutes(20));
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&short_lived, body).await;
    assert_refused(&result, "cert-expired");
}

#[tokio::test]
async fn a_signing_certificate_without_the_echo_api_san_is_refused() {
    let wrong_name = Pki::new(LeafOptions {
        sans: vec![
            "echo-api.amazon.com.evil.example".into(),
            "evil.example".into(),
        ],
        ..LeafOptions::default()
    });
    let server = TestServer::start(&wrong_name).await;
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&wrong_name, body).await;
    assert_refused(&result, "cert-wrong-san");
}

#[tokio::test]
async fn a_certificate_for_another_purpose_is_refused() {
    let code_signing = Pki::new(LeafOptions {
        extended_key_usages: vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning],
        ..LeafOptions::default()
    });
    let server = TestServer::start(&code_signing).await;
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&code_signing, body).await;
    assert_refused(&result, "cert-untrusted");
}

#[tokio::test]
async fn a_chain_to_an_untrusted_root_is_refused() {
    let server = TestServer::start(&PKI).await;
    let stranger = Pki::new(LeafOptions::default());
    server.install_chain(CERT_URL, &stranger.chain_pem);
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&stranger, body).await;
    assert_refused(&result, "cert-untrusted");
}

#[tokio::test]
async fn a_signature_over_other_bytes_is_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let headers = PKI.headers(&body);
    // One byte changed after signing: a space added inside the JSON.
    let mut tampered = body.clone();
    tampered.insert(1, b' ');
    let result = server.post(tampered, &headers).await;
    assert_refused(&result, "bad-signature");
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let server = TestServer::start(&PKI).await;
    let other = Pki::new(LeafOptions::default());
    let body = bytes(&request_at("launch", server.now()));
    let headers = vec![
        ("SignatureCertChainUrl", CERT_URL.to_owned()),
        ("Signature-256", other.sign(&body)),
    ];
    let result = server.post(body, &headers).await;
    assert_refused(&result, "bad-signature");
}

#[tokio::test]
async fn the_sha1_signature_alone_is_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let headers = vec![
        ("SignatureCertChainUrl", CERT_URL.to_owned()),
        // Even a value that would verify under SHA-256 is not accepted in this header.
        ("Signature", PKI.sign(&body)),
    ];
    let result = server.post(body, &headers).await;
    assert_refused(&result, "sha1-signature-only");
}

#[tokio::test]
async fn missing_signature_headers_are_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let no_url = vec![("Signature-256", PKI.sign(&body))];
    let result = server.post(body.clone(), &no_url).await;
    assert_refused(&result, "missing-cert-url");

    let no_signature = vec![("SignatureCertChainUrl", CERT_URL.to_owned())];
    let result = server.post(body.clone(), &no_signature).await;
    assert_refused(&result, "missing-signature");

    let result = server.post(body, &[]).await;
    assert_refused(&result, "missing-cert-url");
}

#[tokio::test]
async fn a_signature_that_is_not_base64_is_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let headers = vec![
        ("SignatureCertChainUrl", CERT_URL.to_owned()),
        ("Signature-256", "not base64 at all!".to_owned()),
    ];
    let result = server.post(body, &headers).await;
    assert_refused(&result, "signature-encoding");
}

#[tokio::test]
async fn a_url_with_no_prefetched_chain_is_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let headers = vec![
        (
            "SignatureCertChainUrl",
            "https://s3.amazonaws.com/echo.api/never-fetched.pem".to_owned(),
        ),
        ("Signature-256", PKI.sign(&body)),
    ];
    let result = server.post(body, &headers).await;
    assert_refused(&result, "cert-not-prefetched");
}

#[tokio::test]
async fn a_file_that_is_not_a_chain_is_refused() {
    let server = TestServer::start(&PKI).await;
    server.install_chain(CERT_URL, "this is not PEM");
    let body = bytes(&request_at("launch", server.now()));
    let result = server.post_signed(&PKI, body).await;
    assert_refused(&result, "cert-unreadable");
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused_and_the_edges_accepted() {
    let server = TestServer::start(&PKI).await;
    let now = server.now();

    let stale = bytes(&request_at("launch", now - Duration::seconds(151)));
    assert_refused(&server.post_signed(&PKI, stale).await, "stale-timestamp");

    let future = bytes(&request_at("launch", now + Duration::seconds(151)));
    assert_refused(&server.post_signed(&PKI, future).await, "future-timestamp");

    for offset in [-149, 149] {
        let body = bytes(&request_at("launch", now + Duration::seconds(offset)));
        let (status, response) = server.post_signed(&PKI, body).await;
        assert_eq!(status, 200, "{offset} s: {response}");
    }
}

#[tokio::test]
async fn skill_events_may_be_up_to_an_hour_old() {
    let server = TestServer::start(&PKI).await;
    let now = server.now();

    let late = bytes(&request_at(
        "skill-event-enabled",
        now - Duration::minutes(50),
    ));
    let (status, response) = server.post_signed(&PKI, late).await;
    assert_eq!(status, 200, "{response}");

    let too_late = bytes(&request_at(
        "skill-event-enabled",
        now - Duration::minutes(61),
    ));
    assert_refused(&server.post_signed(&PKI, too_late).await, "stale-timestamp");

    // An ordinary request may not use the skill-event allowance.
    let launch = bytes(&request_at("launch", now - Duration::minutes(50)));
    assert_refused(&server.post_signed(&PKI, launch).await, "stale-timestamp");
}

#[tokio::test]
async fn a_request_for_another_skill_is_refused() {
    let server = TestServer::start(&PKI).await;
    let mut body = request_at("launch", server.now());
    let other = json!({"applicationId": "amzn1.ask.skill.99999999-0000-0000-0000-000000000000"});
    body["session"]["application"] = other.clone();
    body["context"]["System"]["application"] = other;
    assert_refused(
        &server.post_signed(&PKI, bytes(&body)).await,
        "wrong-skill-id",
    );
}

#[tokio::test]
async fn context_and_session_must_both_name_the_skill() {
    let server = TestServer::start(&PKI).await;
    let mut body = request_at("launch", server.now());
    body["session"]["application"] =
        json!({"applicationId": "amzn1.ask.skill.99999999-0000-0000-0000-000000000000"});
    assert_refused(
        &server.post_signed(&PKI, bytes(&body)).await,
        "wrong-skill-id",
    );
}

#[tokio::test]
async fn a_replayed_request_is_refused() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    let (status, _) = server.post_signed(&PKI, body.clone()).await;
    assert_eq!(status, 200);
    assert_refused(&server.post_signed(&PKI, body).await, "replayed-request");
}

#[tokio::test]
async fn a_refused_request_leaves_no_trace_in_the_replay_guard() {
    let server = TestServer::start(&PKI).await;
    let body = bytes(&request_at("launch", server.now()));
    // Same request id, but refused (bad signature) first: the id must not be burnt.
    let headers = vec![
        ("SignatureCertChainUrl", CERT_URL.to_owned()),
        ("Signature-256", PKI.sign(b"something else")),
    ];
    assert_refused(&server.post(body.clone(), &headers).await, "bad-signature");
    let (status, response) = server.post_signed(&PKI, body).await;
    assert_eq!(status, 200, "{response}");
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_request_is_refused() {
    let server = TestServer::start(&PKI).await;
    for body in [b"{not json".to_vec(), br#"{"version":"1.0"}"#.to_vec()] {
        assert_refused(&server.post_signed(&PKI, body).await, "malformed-request");
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let server = TestServer::start(&PKI).await;
    let body = vec![b' '; 129 * 1024];
    let headers = PKI.headers(&body);
    assert_refused(&server.post(body, &headers).await, "body-too-large");
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused() {
    let server = TestServer::start(&PKI).await;
    // A streamed body has no Content-Length; the read stops at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 4096])).collect();
    let response = reqwest::Client::new()
        .post(format!("{}/alexa", server.base_url))
        .header("SignatureCertChainUrl", CERT_URL)
        .header("Signature-256", PKI.sign(b"x"))
        .body(reqwest::Body::wrap_stream(futures_util_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let json: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(json["reason"], "body-too-large");
}

fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks)
}

async fn replayed_to_another_replica(backend: Backend) {
    let first = TestServer::start_full(&PKI, backend, NO_AWS, |_| {}).await;
    let second = TestServer::start_on(
        &PKI,
        first.db.share(),
        common::aws::sdk_config(NO_AWS),
        voxgate::clock::ManualClock::new(first.now()),
        |_| {},
    )
    .await;
    let body = bytes(&request_at("launch", first.now()));
    let (status, _) = first.post_signed(&PKI, body.clone()).await;
    assert_eq!(status, 200);
    // The same signed request, captured and sent to the other replica.
    assert_refused(&second.post_signed(&PKI, body).await, "replayed-request");
}

#[tokio::test]
async fn a_request_replayed_to_another_replica_is_refused_postgres() {
    replayed_to_another_replica(Backend::Postgres).await;
}

/// The shared ledger keeps any request id as itself: ids with the characters an array
/// literal gives meaning to (quotes, backslashes, commas, braces, spaces, `NULL`) are each
/// one id, new once and a replay after, alone or mixed in a batch with new ones.
async fn odd_request_ids_are_each_recorded_as_themselves(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let odd = [
        "amzn1.echo-api.request.0",
        "with \"quotes\"",
        "back\\slash\\",
        "comma,separated",
        "{braces}",
        "  spaces  ",
        "NULL",
        "",
        "\\\"",
        "ünïcödé ✓",
    ];
    let expiry = 4_000_000_000;
    let batch: Vec<(String, i64)> = odd.iter().map(|id| ((*id).to_owned(), expiry)).collect();
    assert_eq!(
        store.record_request_ids(&batch).await.unwrap(),
        vec![true; odd.len()],
        "each id is new once"
    );
    assert_eq!(
        store.record_request_ids(&batch).await.unwrap(),
        vec![false; odd.len()],
        "and a replay after"
    );
    let mixed = vec![
        ("comma".to_owned(), expiry),
        ("comma,separated".to_owned(), expiry),
        ("with \"quotes".to_owned(), expiry),
        ("NULL".to_owned(), expiry),
    ];
    assert_eq!(
        store.record_request_ids(&mixed).await.unwrap(),
        vec![true, false, true, false]
    );
}

on_both_backends!(odd_request_ids_are_each_recorded_as_themselves);

#[tokio::test]
async fn sqlite_is_served_by_one_process() {
    let first = TestServer::start_full(&PKI, Backend::Sqlite, NO_AWS, |_| {}).await;
    let roots = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(roots.path(), &PKI.root_pem).unwrap();
    let second = first.db.share();
    let args = common::serve_args(
        roots.path(),
        first.cert_dir.path(),
        &second,
        &second.dir.path().join("voxgate.key"),
    );
    let error = voxgate::app::App::build(
        args.into_settings().unwrap(),
        voxgate::app::Runtime {
            clock: std::sync::Arc::new(first.clock.clone()),
            aws: common::aws::sdk_config(NO_AWS),
        },
    )
    .await
    .err()
    .expect("a second serving process on the same SQLite file is refused");
    assert!(
        format!("{error:#}").contains("another voxgate serve is already using the SQLite database"),
        "{error:#}"
    );
}

on_both_backends!(a_request_replayed_after_a_restart_is_refused);
async fn a_request_replayed_after_a_restart_is_refused(backend: Backend) {
    let server = TestServer::start_full(&PKI, backend, NO_AWS, |_| {}).await;
    let clock = server.clock.clone();
    let body = bytes(&request_at("launch", server.now()));
    assert_eq!(server.post_signed(&PKI, body.clone()).await.0, 200);
    // A graceful restart (SQLite: the ids kept in memory are written on the way out and
    // read back).
    let db = server.into_db();
    let restarted =
        TestServer::start_on(&PKI, db, common::aws::sdk_config(NO_AWS), clock, |_| {}).await;
    assert_refused(&restarted.post_signed(&PKI, body).await, "replayed-request");
    // And a new request is answered, so the refusal is about the replay.
    let fresh = bytes(&request_at("launch", restarted.now()));
    assert_eq!(restarted.post_signed(&PKI, fresh).await.0, 200);
}

// ---- Hardening (issue 8) ----

/// A request signed with `pki`, naming `url` as its chain (a signature that does not fit
/// the body if `good` is false).
fn naming(
    server: &TestServer,
    pki: &Pki,
    url: &str,
    good: bool,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let body = bytes(&request_at("launch", server.now()));
    let signature = if good {
        pki.sign(&body)
    } else {
        pki.sign(b"some other bytes")
    };
    let headers = vec![
        ("SignatureCertChainUrl", url.to_owned()),
        ("Signature-256", signature),
    ];
    (body, headers)
}

/// Makes the chain file of `url` a FIFO: loading it blocks until someone writes to it.
fn stuck_chain(server: &TestServer, url: &str) -> std::path::PathBuf {
    let path = server.cert_dir.path().join(chain_file_name(url));
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// Unblocks a FIFO chain by writing `contents` to it (on a thread: opening blocks until
/// the reader is there, which it is).
fn release(path: std::path::PathBuf, contents: &'static str) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write as _;
        if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = fifo.write_all(contents.as_bytes());
        }
    })
}

#[tokio::test]
async fn chain_loading_cannot_be_driven_by_strangers() {
    let server = std::sync::Arc::new(TestServer::start(&PKI).await);
    let genuine = || async {
        let (status, response) = server
            .post_signed(&PKI, bytes(&request_at("launch", server.now())))
            .await;
        assert_eq!(status, 200, "{response}");
    };
    genuine().await;

    // 1. A load that hangs (here: a chain file nobody writes) holds up only its own URL.
    let slow_url = "https://s3.amazonaws.com/echo.api/slow.pem";
    let slow_fifo = stuck_chain(&server, slow_url);
    let slow = tokio::spawn({
        let server = std::sync::Arc::clone(&server);
        async move {
            let (body, headers) = naming(&server, &PKI, slow_url, true);
            server.post(body, &headers).await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let other_url = "https://s3.amazonaws.com/echo.api/echo-api-cert-13.pem";
    server.install_chain(other_url, &PKI.chain_pem);
    let (body, headers) = naming(&server, &PKI, other_url, true);
    let (status, response) = tokio::time::timeout(
        std::time::Duration::from_secs(4),
        server.post(body, &headers),
    )
    .await
    .expect("a request for another chain does not wait for the stuck load");
    assert_eq!(status, 200, "{response}");

    // 2. Loads in flight are capped: with three more stuck, the next URL is refused at once.
    let mut fifos = vec![slow_fifo];
    let mut stuck = Vec::new();
    for i in 0..3 {
        let url = format!("https://s3.amazonaws.com/echo.api/stuck-{i}.pem");
        fifos.push(stuck_chain(&server, &url));
        stuck.push(tokio::spawn({
            let server = std::sync::Arc::clone(&server);
            async move {
                let (body, headers) = naming(&server, &PKI, &url, true);
                server.post(body, &headers).await
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (body, headers) = naming(
        &server,
        &PKI,
        "https://s3.amazonaws.com/echo.api/one-more.pem",
        true,
    );
    assert_refused(&server.post(body, &headers).await, "cert-load-busy");
    // A genuine request with its chain cached does not notice any of it.
    genuine().await;
    // The stuck requests are answered after a bounded wait, not held for ever.
    let slow_result = tokio::time::timeout(std::time::Duration::from_secs(10), slow)
        .await
        .expect("the waiting request gets an answer")
        .unwrap();
    assert_refused(&slow_result, "cert-load-timeout");

    // 3. A flood: made-up URLs, real chains named with signatures that do not verify, and
    // a chain from another root. All refused; none pushes the genuine chain out.
    let foreign = Pki::new(LeafOptions::default());
    let mut flood = Vec::new();
    for i in 0..40 {
        let url = format!("https://s3.amazonaws.com/echo.api/real-{i}.pem");
        server.install_chain(&url, &PKI.chain_pem);
        flood.push(naming(&server, &PKI, &url, false));
        flood.push(naming(
            &server,
            &PKI,
            &format!("https://s3.amazonaws.com/echo.api/made-up-{i}.pem"),
            true,
        ));
    }
    let foreign_url = "https://s3.amazonaws.com/echo.api/foreign.pem";
    server.install_chain(foreign_url, &foreign.chain_pem);
    for _ in 0..5 {
        flood.push(naming(&server, &foreign, foreign_url, true));
    }
    let answers = futures_util::future::join_all(flood.into_iter().map(|(body, headers)| {
        let server = std::sync::Arc::clone(&server);
        async move { server.post(body, &headers).await.0 }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 400), "{answers:?}");
    // The genuine chain stays cached: with its file gone, genuine requests still verify.
    std::fs::remove_file(server.cert_dir.path().join(chain_file_name(CERT_URL))).unwrap();
    genuine().await;

    // 4. A failed load is not tried again at once, whatever failed.
    for path in fifos {
        release(path, "not a chain").join().unwrap();
    }
    for task in stuck {
        let _ = task.await;
    }
    let (body, headers) = naming(&server, &PKI, slow_url, true);
    assert_refused(&server.post(body, &headers).await, "cert-recently-failed");
    let garbage_url = "https://s3.amazonaws.com/echo.api/garbage.pem";
    server.install_chain(garbage_url, "not PEM");
    for (url, pki, first) in [
        (
            "https://s3.amazonaws.com/echo.api/never-there.pem",
            &*PKI,
            "cert-not-prefetched",
        ),
        (garbage_url, &*PKI, "cert-unreadable"),
        (foreign_url, &foreign, "cert-untrusted"),
    ] {
        let (body, headers) = naming(&server, pki, url, true);
        let result = server.post(body, &headers).await;
        if first != "cert-untrusted" {
            assert_refused(&result, first);
        }
        let (body, headers) = naming(&server, pki, url, true);
        assert_refused(&server.post(body, &headers).await, "cert-recently-failed");
    }
}

/// Three replicas on one database; A's clock runs 140 s ahead (still within the 150 s it
/// allows). What A forgets must not let a replay through C.
async fn a_fast_replica_does_not_forget_for_the_others(backend: Backend) {
    let b = TestServer::start_full(&PKI, backend, NO_AWS, |_| {}).await;
    let t = b.now();
    let replica = |clock: voxgate::clock::ManualClock| {
        TestServer::start_on(
            &PKI,
            b.db.share(),
            common::aws::sdk_config(NO_AWS),
            clock,
            |_| {},
        )
    };
    let a = replica(voxgate::clock::ManualClock::new(t + Duration::seconds(140))).await;
    let c = replica(voxgate::clock::ManualClock::new(t)).await;
    // X, 100 s old, reaches B: accepted and recorded until its window ends (t + 50 s).
    let x = bytes(&request_at("launch", t - Duration::seconds(100)));
    assert_eq!(b.post_signed(&PKI, x.clone()).await.0, 200);
    // Y, fresh, reaches A, whose clock already says t + 140 s.
    let y = bytes(&request_at("launch", t));
    assert_eq!(a.post_signed(&PKI, y).await.0, 200);
    // X replayed to C (clock t: X is still within its window there) is still refused.
    assert_refused(&c.post_signed(&PKI, x).await, "replayed-request");
}

#[tokio::test]
async fn a_fast_replica_does_not_forget_for_the_others_postgres() {
    a_fast_replica_does_not_forget_for_the_others(Backend::Postgres).await;
}
