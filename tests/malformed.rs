//! Thousands of bad requests against `POST /alexa` and the companion API, generated from a
//! fixed seed (so a failure can be replayed): bodies broken byte by byte and then signed
//! (so they reach the parser), envelopes of the wrong shape, strange slot values from a
//! known speaker, bad signature headers and certificate URLs, and garbage to the companion
//! endpoints. Every one must be answered with a 4xx or a spoken answer, never a 5xx or a
//! dropped connection, and afterwards the store and the audit log are exactly what they
//! were.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::scene::*;
use common::*;
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*): the same seed, the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        self.bytes(len)
    }
}

/// Strange values a slot or a field might carry.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => json!(""),
        1 => json!("x".repeat(20_000)),
        2 => json!("box-9\u{0}\n; DROP TABLE challenges; --"),
        3 => json!("🙂 ünïcödé ᚠᛇᚻ"),
        4 => json!(-1),
        5 => json!(1e308),
        6 => json!(null),
        7 => json!([1, 2, 3]),
        8 => json!({"value": {"nested": true}}),
        _ => json!(String::from_utf8_lossy(&rng.bytes(40))),
    }
}

const INTENTS: &[&str] = &[
    "StopInstanceIntent",
    "StartInstanceIntent",
    "RebootInstanceIntent",
    "ListInstancesIntent",
    "VerifyCodeIntent",
    "SetBudgetIntent",
    "CleanupIntent",
    "AMAZON.HelpIntent",
    "AMAZON.StopIntent",
    "NoSuchIntent",
    "",
];

/// An envelope from `who` whose parts are broken in one of many ways.
fn odd_envelope(rng: &mut Rng, server: &TestServer, who: &str) -> Value {
    let intent = *rng.pick(INTENTS);
    let mut body = intent_from(
        who,
        intent,
        // No instance of that name: an envelope that survives its damage holds nothing.
        &[("instance", "no-such-box"), ("code", "123456")],
        server.now(),
    );
    match rng.below(12) {
        0 => body["request"]["type"] = odd_value(rng),
        1 => body["request"]["intent"]["slots"]["instance"]["value"] = odd_value(rng),
        2 => body["request"]["intent"]["slots"]["code"]["value"] = odd_value(rng),
        3 => body["request"]["intent"] = odd_value(rng),
        4 => body["session"] = odd_value(rng),
        5 => {
            body["session"]["attributes"] =
                json!({"challengeId": odd_value(rng), "askContext": odd_value(rng)})
        }
        6 => body["context"] = odd_value(rng),
        7 => body["request"]["timestamp"] = odd_value(rng),
        8 => body["request"]["requestId"] = odd_value(rng),
        9 => body["version"] = odd_value(rng),
        10 => body["request"]["locale"] = odd_value(rng),
        _ => body["request"]["intent"]["slots"] = odd_value(rng),
    }
    body
}

/// Everything a bad request could have changed.
async fn snapshot(server: &TestServer, alice: &voxgate::store::User) -> String {
    let store = &server.store;
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        serde_json::to_string(&store.audit_records(None, 0, 100_000).await.unwrap()).unwrap(),
        serde_json::to_string(&store.tenants().await.unwrap()).unwrap(),
        serde_json::to_string(&store.users(None).await.unwrap()).unwrap(),
        serde_json::to_string(&store.devices(None).await.unwrap()).unwrap(),
        serde_json::to_string(&store.pending_challenges(&alice.id).await.unwrap()).unwrap(),
        store
            .accounts(None)
            .await
            .unwrap()
            .iter()
            .map(|a| format!("{}:{}", a.id.as_str(), a.name))
            .collect::<Vec<_>>()
            .join(","),
        serde_json::to_string(&store.user_locked_until(&alice.id).await.unwrap()).unwrap(),
    )
}

/// A 4xx, or a 200 with something said.
fn acceptable(status: u16, response: &Value) -> bool {
    (400..500).contains(&status)
        || (status == 200
            && (response["response"]["outputSpeech"].is_object()
                || response["response"]
                    .as_object()
                    .is_some_and(|r| r.is_empty())
                || response["response"]["shouldEndSession"].is_boolean()))
}

#[tokio::test]
async fn bad_requests_are_refused_or_answered_and_change_nothing() {
    let s = scene(Backend::Sqlite).await;
    let app_token = {
        // A paired device, so the companion endpoints are reached with a real token too.
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_voxgate"));
        command
            .current_dir(s.server.db.dir.path())
            .env("VOXGATE_DATABASE_URL", &s.server.db.url)
            .args(["pair", "--user", "alice", "--json"]);
        let out = run_command(command).await;
        let code: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (_, paired) = s
            .server
            .post_companion(
                "/api/v1/companion/pair",
                json!({"code": code["code"]}).to_string(),
                None,
            )
            .await;
        paired["token"].as_str().unwrap().to_owned()
    };
    let before = snapshot(&s.server, &s.alice).await;
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let valid = bytes(&intent_from(
        ALICE,
        "ListInstancesIntent",
        &[],
        s.server.now(),
    ));
    let mut counts = [0usize; 4];

    for round in 0..2400 {
        let (status, response, what) = match round % 6 {
            // A valid body broken byte by byte, then signed: it reaches the parser.
            0 => {
                let mut body = valid.clone();
                for _ in 0..=rng.below(8) {
                    let at = rng.below(body.len());
                    match rng.below(3) {
                        0 => body[at] = rng.next() as u8,
                        1 => body.truncate(at.max(1)),
                        _ => {
                            let inserted = rng.some_bytes(16);
                            body.splice(at..at, inserted);
                        }
                    }
                    if body.is_empty() {
                        break;
                    }
                }
                let (status, response) = s.server.post_signed(&PKI, body).await;
                (status, response, "a broken body")
            }
            // Envelopes of the wrong shape, from the known speaker and from a stranger.
            1 | 2 => {
                let who = if round % 6 == 1 { ALICE } else { MALLORY };
                let body = odd_envelope(&mut rng, &s.server, who);
                let (status, response) = s.server.post_signed(&PKI, bytes(&body)).await;
                (status, response, "an odd envelope")
            }
            // Bad signature headers and certificate URLs on a valid body.
            3 => {
                let body = bytes(&intent_from(
                    ALICE,
                    "ListInstancesIntent",
                    &[],
                    s.server.now(),
                ));
                let url = rng
                    .pick(&[
                        "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
                        "https://s3.amazonaws.com/echo.api/../echo-api-cert.pem",
                        "https://s3.amazonaws.com/echo.api/%65cho-api-cert.pem",
                        "https://s3.amazonaws.com:444/echo.api/echo-api-cert.pem",
                        "https://evil.example.com/echo.api/echo-api-cert.pem",
                        "https://s3.amazonaws.com/EcHo.ApI/cert.pem",
                        "",
                        "https://s3.amazonaws.com/echo.api/echo api cert.pem",
                    ])
                    .to_string();
                let signature = match rng.below(4) {
                    0 => String::new(),
                    1 => "not base64!".into(),
                    2 => base64_of(&rng.bytes(256)),
                    _ => PKI.sign(b"another body"),
                };
                let mut headers = vec![("Signature-256", signature)];
                if !url.is_empty() {
                    headers.push(("SignatureCertChainUrl", url));
                }
                let (status, response) = s.server.post(body, &headers).await;
                (status, response, "bad signature headers")
            }
            // Garbage to the companion API, with and without a real token.
            4 => {
                let token = if rng.below(2) == 0 {
                    Some(app_token.clone())
                } else {
                    // Anything a header can carry.
                    Some(
                        rng.bytes(30)
                            .iter()
                            .map(|b| char::from(b' ' + b % 95))
                            .collect(),
                    )
                };
                let path = rng
                    .pick(&[
                        "/api/v1/companion/challenges/c_nope/deny".to_owned(),
                        format!("/api/v1/companion/challenges/{}/deny", "x".repeat(5000)),
                        "/api/v1/companion/challenges/%00/deny".to_owned(),
                        "/api/v1/companion/unpair".to_owned(),
                    ])
                    .clone();
                let body = String::from_utf8_lossy(&rng.some_bytes(64)).into_owned();
                let (status, response) = s
                    .server
                    .post_companion(
                        &path,
                        body,
                        token.as_deref().filter(|_| !path.ends_with("unpair")),
                    )
                    .await;
                (status, response, "companion garbage")
            }
            // Pairing bodies that are not a pairing request at all.
            _ => {
                let body = match rng.below(4) {
                    0 => String::from_utf8_lossy(&rng.some_bytes(200)).into_owned(),
                    1 => json!({"code": odd_value(&mut rng)})
                        .to_string()
                        .replace("\"code\"", "\"kode\""),
                    2 => json!([1, 2]).to_string(),
                    _ => "{".repeat(rng.below(3000) + 1),
                };
                let (status, response) = s
                    .server
                    .post_companion("/api/v1/companion/pair", body, None)
                    .await;
                (status, response, "a pairing body")
            }
        };
        assert!(
            acceptable(status, &response),
            "round {round} ({what}): HTTP {status} {response}"
        );
        counts[usize::from(status == 200) + 2 * usize::from(round % 6 >= 4)] += 1;
    }
    // The bad requests were really tried both ways: refused, and answered in words.
    assert!(counts[0] > 500 && counts[1] > 100, "{counts:?}");

    let after = snapshot(&s.server, &s.alice).await;
    for (part, (was, is)) in before.lines().zip(after.lines()).enumerate() {
        assert_eq!(
            is, was,
            "a bad request changed the store or the audit log (part {part} of the snapshot)"
        );
    }
    // And the service still answers a good request.
    let said = speech(
        &s.server
            .say(intent_from(
                ALICE,
                "ListInstancesIntent",
                &[],
                s.server.now(),
            ))
            .await,
    );
    assert!(said.contains("web-1"), "{said}");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
