//! The companion API as the app uses it: pairing with a code from `voxgate pair`, the
//! pending approvals with their current code, deny, live events, device revocation, and
//! nothing shared across users.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration as StdDuration;

use common::scene::*;
use common::*;
use serde_json::{Value, json};
use time::Duration;

/// `voxgate pair --user NAME --json` against the server's database.
async fn pairing_code(server: &TestServer, user: &str) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    command
        .current_dir(server.db.dir.path())
        .env("VOXGATE_DATABASE_URL", &server.db.url)
        .env("VOXGATE_PUBLIC_URL", &server.base_url)
        .args(["pair", "--user", user, "--json"]);
    let out = run_command(command).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn voxgate(server: &TestServer, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    command
        .current_dir(server.db.dir.path())
        .env("VOXGATE_DATABASE_URL", &server.db.url)
        .args(args);
    run_command(command).await
}

struct App {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl App {
    async fn pair(server: &TestServer, code: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/companion/pair", server.base_url))
            .body(json!({"code": code}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn paired(server: &TestServer, user: &str) -> App {
        let code = pairing_code(server, user).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = App::pair(server, &code).await;
        assert_eq!(status, 200, "{body}");
        App {
            base: server.base_url.clone(),
            token: body["token"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn pending(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/companion/challenges").await;
        assert_eq!(status, 200, "{body}");
        body["challenges"].as_array().unwrap().clone()
    }
}

on_both_backends!(the_spoken_flow_with_the_code_from_the_companion_api);
async fn the_spoken_flow_with_the_code_from_the_companion_api(backend: Backend) {
    let s = scene(backend).await;
    let pairing = pairing_code(&s.server, "alice").await;
    assert!(
        pairing["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/app#code=", s.server.base_url))
    );
    let app = App::paired(&s.server, "alice").await;
    assert!(app.pending().await.is_empty());

    let held = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let pending = app.pending().await;
    assert_eq!(pending.len(), 1);
    let approval = &pending[0];
    assert_eq!(approval["id"], challenge_id(&held).as_str());
    assert_eq!(approval["summary"], "Stop web-1 in prod, Ireland");
    assert!(
        speech(&held).contains("stop web-1 in prod, Ireland"),
        "the app shows what Alexa said"
    );
    assert_eq!(approval["instance"]["name"], "web-1");
    assert_eq!(approval["account"], "prod");
    assert_eq!(approval["region"], "eu-west-1");
    let code = approval["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert!((1..=30).contains(&approval["seconds_left_in_step"].as_u64().unwrap()));
    assert!(
        (299..=300).contains(&approval["seconds_left"].as_i64().unwrap()),
        "five minutes to go"
    );

    let done = s
        .server
        .say(say_code(&s.server, ALICE, &challenge_id(&held), code))
        .await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    assert!(matches!(
        state_of(&s.ec2, &s.web1).await.as_str(),
        "stopping" | "stopped"
    ));
    assert!(app.pending().await.is_empty());
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "executed"]);
}

#[tokio::test]
async fn deny_from_the_app_ends_the_approval() {
    let s = scene(Backend::Sqlite).await;
    let app = App::paired(&s.server, "alice").await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = app.pending().await[0]["code"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    assert_eq!((status, body["state"].clone()), (200, json!("denied")));
    let (status, _) = app
        .post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    assert_eq!(status, 409, "denying twice says it is no longer waiting");
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was denied in your voxgate app, so nothing ran."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "denied", "code-after-deny"]
    );
    // The log names the device that denied it.
    let story = s.server.store.audit_of_challenge(&id).await.unwrap();
    assert!(
        story[1].actor.as_deref().unwrap().starts_with("device:d_"),
        "{story:?}"
    );
}

#[tokio::test]
async fn wrong_tokens_get_401_and_other_users_see_nothing() {
    let s = scene(Backend::Sqlite).await;
    let globex = s.server.tenant("globex").await;
    s.server.enrol(&globex, "mallory", MALLORY).await;
    let alice_app = App::paired(&s.server, "alice").await;
    let mallory_app = App::paired(&s.server, "mallory").await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;

    for token in ["", "not-a-token", &format!("{}x", alice_app.token)] {
        let app = App {
            base: s.server.base_url.clone(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        };
        assert_eq!(
            app.get("/api/v1/companion/challenges").await.0,
            401,
            "token {token:?}"
        );
        assert_eq!(app.get("/api/v1/companion/events").await.0, 401);
        assert_eq!(
            app.post(&format!("/api/v1/companion/challenges/{id}/deny"))
                .await
                .0,
            401
        );
    }
    let no_header = reqwest::get(format!("{}/api/v1/companion/challenges", s.server.base_url))
        .await
        .unwrap();
    assert_eq!(no_header.status().as_u16(), 401);

    assert!(
        mallory_app.pending().await.is_empty(),
        "Mallory sees none of Alice's approvals"
    );
    let (status, _) = mallory_app
        .post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    assert_eq!(status, 404, "another user's approval is not found");
    assert_eq!(alice_app.pending().await.len(), 1, "and stays pending");
}

#[tokio::test]
async fn pairing_codes_work_once_and_expire() {
    let s = scene(Backend::Sqlite).await;
    let code = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    // Stored neither as typed nor as a plain SHA-256 (2^40 codes would be quick to try).
    let plain = code.replace('-', "");
    let sha = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        plain.as_bytes(),
    ));
    let stored = String::from_utf8_lossy(&s.server.db.all_bytes().await).into_owned();
    assert!(!stored.contains(&plain) && !stored.contains(&sha));
    // Typed in lower case without the dash, it still works, once.
    let typed = code.replace('-', "").to_lowercase();
    assert_eq!(App::pair(&s.server, &typed).await.0, 200);
    let (status, body) = App::pair(&s.server, &code).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already used or expired"),
        "{body}"
    );

    let late = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    s.server.clock.advance(Duration::minutes(11));
    assert_eq!(App::pair(&s.server, &late).await.0, 400);

    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/companion/pair", s.server.base_url))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn several_devices_and_revocation() {
    let s = scene(Backend::Sqlite).await;
    let phone = App::paired(&s.server, "alice").await;
    let tablet = App::paired(&s.server, "alice").await;
    s.server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    assert_eq!(
        phone.pending().await,
        tablet.pending().await,
        "both devices show the same approval and code"
    );

    let list: Value = serde_json::from_slice(
        &voxgate(&s.server, &["device", "list", "--user", "alice", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let first = list[0]["id"].as_str().unwrap().to_owned();
    let out = voxgate(&s.server, &["device", "revoke", &first]).await;
    assert!(out.status.success());
    let revoked = [&phone, &tablet];
    let statuses = futures_util::future::join_all(
        revoked
            .iter()
            .map(|a| a.get("/api/v1/companion/challenges")),
    )
    .await;
    let codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
    assert!(codes.contains(&401) && codes.contains(&200), "{codes:?}");
    let again = voxgate(&s.server, &["device", "revoke", &first]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active device"));
    let unknown = voxgate(&s.server, &["pair", "--user", "nobody"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("there is no user 'nobody'"));
}

#[tokio::test]
async fn removing_a_user_revokes_their_devices_and_forgets_them() {
    let s = scene(Backend::Sqlite).await;
    let phone = App::paired(&s.server, "alice").await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    // Not while an operation of theirs waits for its code.
    let busy = voxgate(&s.server, &["user", "remove", "alice"]).await;
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("waiting for a code or running"));
    assert_eq!(phone.get("/api/v1/companion/challenges").await.0, 200);
    let (status, _) = phone
        .post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    assert_eq!(status, 200);

    let out = voxgate(&s.server, &["user", "remove", "alice"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 paired device revoked"));
    assert_eq!(phone.get("/api/v1/companion/challenges").await.0, 401);
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
    assert!(
        !said.contains("web-1"),
        "a removed user is a stranger: {said}"
    );
}

/// Reads SSE events until `want` arrives (or the time is up); returns (event, data) pairs.
async fn read_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    want: &str,
) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim());
                }
            }
            if data.is_empty() {
                continue;
            }
            let done = event == want;
            seen.push((event, serde_json::from_str(&data).unwrap()));
            if done {
                return seen;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no '{want}' event: {seen:?}"));
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
}

#[tokio::test]
async fn the_event_stream_shows_approvals_live() {
    let s = scene(Backend::Sqlite).await;
    let app = App::paired(&s.server, "alice").await;
    let mut stream = app
        .http
        .get(format!("{}/api/v1/companion/events", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let first = read_events(&mut stream, &mut buffer, "challenges").await;
    assert_eq!(first.last().unwrap().1, json!({"challenges": []}));

    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let created = read_events(&mut stream, &mut buffer, "created").await;
    assert_eq!(created.last().unwrap().1["challenge_id"], id.as_str());
    let list = read_events(&mut stream, &mut buffer, "challenges").await;
    let approvals = list.last().unwrap().1["challenges"].clone();
    assert_eq!(approvals[0]["id"], id.as_str());
    assert_eq!(approvals[0]["code"].as_str().unwrap().len(), 6);

    app.post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    let denied = read_events(&mut stream, &mut buffer, "denied").await;
    assert_eq!(denied.last().unwrap().1["summary"], approvals[0]["summary"]);
    let list = read_events(&mut stream, &mut buffer, "challenges").await;
    assert_eq!(list.last().unwrap().1, json!({"challenges": []}));
}

#[tokio::test]
async fn events_reach_devices_on_every_replica() {
    let s = scene(Backend::Postgres).await;
    // A second replica on the same PostgreSQL database; the device talks to it.
    let replica = TestServer::start_on(
        &PKI,
        s.server.db.share(),
        common::aws::sdk_config(&s.proxy.url),
        voxgate::clock::ManualClock::new(s.server.now()),
        |_| {},
    )
    .await;
    let app = App::paired(&replica, "alice").await;
    let mut stream = app
        .http
        .get(format!("{}/api/v1/companion/events", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    read_events(&mut stream, &mut buffer, "challenges").await;

    // Alexa's request lands on the other replica.
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let created = read_events(&mut stream, &mut buffer, "created").await;
    assert_eq!(created.last().unwrap().1["challenge_id"], id.as_str());
    let list = read_events(&mut stream, &mut buffer, "challenges").await;
    let code = list.last().unwrap().1["challenges"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();

    let done = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    read_events(&mut stream, &mut buffer, "confirmed").await;
    read_events(&mut stream, &mut buffer, "executed").await;
}

#[tokio::test]
async fn a_revoked_device_stops_receiving_codes_and_shutdown_ends_streams() {
    let s = scene(Backend::Sqlite).await;
    let phone = App::paired(&s.server, "alice").await;
    let tablet = App::paired(&s.server, "alice").await;
    let mut phone_stream = phone
        .http
        .get(format!("{}/api/v1/companion/events", phone.base))
        .bearer_auth(&phone.token)
        .send()
        .await
        .unwrap();
    let mut tablet_stream = tablet
        .http
        .get(format!("{}/api/v1/companion/events", tablet.base))
        .bearer_auth(&tablet.token)
        .send()
        .await
        .unwrap();
    let (mut phone_buffer, mut tablet_buffer) = (String::new(), String::new());
    read_events(&mut phone_stream, &mut phone_buffer, "challenges").await;
    read_events(&mut tablet_stream, &mut tablet_buffer, "challenges").await;

    let devices: Value = serde_json::from_slice(
        &voxgate(&s.server, &["device", "list", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    let phone_id = devices[0]["id"].as_str().unwrap().to_owned();
    assert!(
        voxgate(&s.server, &["device", "revoke", &phone_id])
            .await
            .status
            .success()
    );

    // The next approval reaches the tablet; the phone's stream ends instead of showing it.
    s.server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let list = read_events(&mut tablet_stream, &mut tablet_buffer, "challenges").await;
    assert_eq!(
        list.last().unwrap().1["challenges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let rest = tokio::time::timeout(StdDuration::from_secs(10), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = phone_stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the revoked device's stream ends");
    assert!(
        !rest.contains("\"code\""),
        "no code after revocation: {rest}"
    );

    // A graceful stop ends open streams instead of waiting for phones to hang up.
    let _db = s.server.into_db();
    let ended = tokio::time::timeout(StdDuration::from_secs(10), async {
        while let Ok(Some(_)) = tablet_stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends at shutdown");
}

// ---- Hardening (issue 8) ----

/// Pairs from `source` (a loopback address of this machine).
async fn pair_from(server: &TestServer, source: &str, code: &str) -> (u16, Value, Option<String>) {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/api/v1/companion/pair", server.base_url))
        .body(json!({"code": code}).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body, retry)
}

#[tokio::test]
async fn a_deny_after_the_approval_says_it_is_already_running() {
    let s = scene(Backend::Sqlite).await;
    let app = App::paired(&s.server, "alice").await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = app.pending().await[0]["code"].as_str().unwrap().to_owned();
    // Approved (the operation is about to run) when Deny arrives.
    let verdict = s
        .server
        .gate
        .confirm(
            &s.alice,
            Some(&id),
            &code,
            &voxgate::audit::Actor::AlexaSession("s".into()),
        )
        .await
        .unwrap();
    assert!(matches!(verdict, voxgate::gate::Verdict::Approved(_)));
    let (status, body) = app
        .post(&format!("/api/v1/companion/challenges/{id}/deny"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["state"], "approved");
    assert_eq!(
        body["error"],
        "Too late to deny: it was already approved with its code and is running now."
    );
}

on_both_backends!(a_deny_racing_the_right_code_is_reported_as_what_happened);
async fn a_deny_racing_the_right_code_is_reported_as_what_happened(backend: Backend) {
    let s = scene(backend).await;
    let app = App::paired(&s.server, "alice").await;
    let mut denied = 0;
    let mut ran = 0;
    for trial in 0..30 {
        let (_, id) = s.hold("RebootInstanceIntent", "web-1").await;
        let code = app.pending().await[0]["code"].as_str().unwrap().to_owned();
        let deny_path = format!("/api/v1/companion/challenges/{id}/deny");
        let ((status, body), spoken) = tokio::join!(
            app.post(&deny_path),
            s.server.say(say_code(&s.server, ALICE, &id, &code))
        );
        let said = speech(&spoken);
        let story: Vec<String> = s
            .server
            .store
            .audit_of_challenge(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.outcome)
            .collect();
        if status == 200 {
            // Deny won: the code is refused as denied, never as "already used".
            denied += 1;
            assert_eq!(
                said, "That request was denied in your voxgate app, so nothing ran.",
                "trial {trial}: {story:?}"
            );
            assert_eq!(
                story,
                ["held", "denied", "code-after-deny"],
                "trial {trial}"
            );
        } else {
            // The code won: the deny says the operation was approved and is running (or ran).
            ran += 1;
            assert_eq!(status, 409, "trial {trial}: {body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("Too late to deny: it was already approved"),
                "trial {trial}: {body}"
            );
            assert_eq!(said, "Rebooting web-1 now.", "trial {trial}");
            assert_eq!(story, ["held", "confirmed", "executed"], "trial {trial}");
        }
    }
    assert_eq!(count(&s.proxy, "RebootInstances"), ran);
    assert_eq!(denied + ran, 30);
}

#[tokio::test]
async fn failed_pairing_attempts_are_limited_per_source_and_in_all() {
    let s = scene(Backend::Sqlite).await;
    let code = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    // Five wrong codes from one source, then it must wait, even with the right code.
    for _ in 0..5 {
        assert_eq!(pair_from(&s.server, "127.0.0.2", "AAAA-AAAA").await.0, 400);
    }
    let (status, body, retry) = pair_from(&s.server, "127.0.0.2", &code).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Too many wrong pairing codes were tried. Wait 15 minutes"),
        "{body}"
    );
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((14 * 60..=15 * 60).contains(&retry), "{retry}");
    // Another source is not held up by that one.
    let (status, body, _) = pair_from(&s.server, "127.0.0.3", &code).await;
    assert_eq!(status, 200, "{body}");

    // Fifty failures from anywhere stop pairing for everyone for a while.
    for i in 0..45 {
        let source = format!("127.0.1.{}", i / 4 + 1);
        assert_eq!(
            pair_from(&s.server, &source, "BBBB-BBBB").await.0,
            400,
            "{i}"
        );
    }
    let fresh = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = pair_from(&s.server, "127.0.2.1", &fresh).await;
    assert_eq!(status, 429, "the global limit holds for a new source too");
    assert_eq!(
        device_outcomes(&s.server)
            .await
            .iter()
            .filter(|o| *o == "pairing-failed")
            .count(),
        50,
        "every failed attempt is on record; refused ones are not tried at all"
    );
}

#[tokio::test]
async fn a_new_pairing_code_voids_the_older_unused_one() {
    let s = scene(Backend::Sqlite).await;
    let older = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let newer = pairing_code(&s.server, "alice").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = App::pair(&s.server, &older).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("replaced by a newer one"),
        "{body}"
    );
    assert_eq!(App::pair(&s.server, &newer).await.0, 200);
    let records = s.server.store.audit_records(None, 0, 100).await.unwrap();
    let issued: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == "pairing-code-issued")
        .collect();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].detail, "the older unused code no longer works");
    assert_eq!(issued[1].actor.as_deref(), Some("operator"));
}

#[tokio::test]
async fn pairing_unpairing_and_revocation_are_audited() {
    let s = scene(Backend::Sqlite).await;
    let phone = App::paired(&s.server, "alice").await;
    let tablet = App::paired(&s.server, "alice").await;
    let (status, body) = phone.post("/api/v1/companion/unpair").await;
    assert_eq!(status, 200, "{body}");
    let phone_id = body["device_id"].as_str().unwrap().to_owned();
    let list: Value = serde_json::from_slice(
        &voxgate(&s.server, &["device", "list", "--user", "alice", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    let tablet_id = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .find(|id| *id != phone_id)
        .unwrap();
    assert!(
        voxgate(&s.server, &["device", "revoke", &tablet_id])
            .await
            .status
            .success()
    );
    assert_eq!(tablet.get("/api/v1/companion/challenges").await.0, 401);
    assert_eq!(
        device_outcomes(&s.server).await,
        [
            "pairing-code-issued",
            "paired",
            "pairing-code-issued",
            "paired",
            "unpaired",
            "device-revoked"
        ]
    );
    let records = s.server.store.audit_records(None, 0, 100).await.unwrap();
    let actors: Vec<String> = records
        .iter()
        .filter(|r| r.outcome == "unpaired" || r.outcome == "device-revoked")
        .map(|r| r.actor.clone().unwrap())
        .collect();
    assert_eq!(
        actors,
        [format!("device:{phone_id}"), "operator".to_owned()]
    );
    assert_eq!(s.server.gate.audit().verify(&records), Ok(()));
}

/// Every kind of critical operation reaches the app the same way: the summary Alexa read
/// back, its details, and a code that approves it when spoken.
#[tokio::test]
async fn every_kind_of_critical_operation_shows_its_summary_details_and_code() {
    let s = scene(Backend::Sqlite).await;
    // The health check's document, as the customer's stack creates it.
    common::aws::health_check_document(&s.account).await;
    let app = App::paired(&s.server, "alice").await;
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        (&'a str, &'a str),
    );
    let cases: [Case; 3] = [
        (
            "SetBudgetIntent",
            vec![("amount", "500")],
            "Create a monthly budget of 500 dollars for prod",
            ("Amount", "500 USD a month"),
        ),
        (
            "CpuAlarmIntent",
            vec![("instance", "web one"), ("percent", "80")],
            "Alert when web-1's CPU is over 80 percent, in prod, Ireland",
            ("Threshold", "average CPU over 80% for 5 minutes"),
        ),
        (
            "RunHealthCheckIntent",
            vec![("instance", "web one")],
            "Run the health check on web-1 in prod, Ireland",
            ("Document", "voxgate-HealthCheck (version 1)"),
        ),
    ];
    for (intent, slots, summary, (label, value)) in cases {
        let held = s.ask(intent, &slots).await;
        let pending = app.pending().await;
        assert_eq!(pending.len(), 1, "{intent}");
        let approval = &pending[0];
        assert_eq!(approval["summary"], summary);
        let first = summary[..1].to_lowercase() + &summary[1..];
        assert!(speech(&held).contains(&first), "{held}");
        let details = approval["details"].as_array().unwrap();
        assert!(
            details.contains(&json!([label, value])),
            "{intent}: {details:?}"
        );
        assert!(details.contains(&json!(["Account", "prod"])), "{details:?}");
        let code = approval["code"].as_str().unwrap();
        let done = s
            .server
            .say(say_code(&s.server, ALICE, &challenge_id(&held), code))
            .await;
        assert!(
            speech(&done).starts_with("Done.")
                || speech(&done).starts_with("Sent the health check"),
            "{intent}: {done}"
        );
        assert!(app.pending().await.is_empty());
    }
}

/// A pairing link on a loopback address works only on this machine: `voxgate pair` says so.
#[tokio::test]
async fn pair_warns_when_its_link_is_a_loopback_address() {
    let s = scene(Backend::Sqlite).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    command
        .current_dir(s.server.db.dir.path())
        .env("VOXGATE_DATABASE_URL", &s.server.db.url)
        .env("VOXGATE_PUBLIC_URL", "http://127.0.0.1:8080")
        .args(["pair", "--user", "alice"]);
    let out = run_command(command).await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("which only this machine can open; set --public-url"),
        "{stderr}"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    command
        .current_dir(s.server.db.dir.path())
        .env("VOXGATE_DATABASE_URL", &s.server.db.url)
        .env("VOXGATE_PUBLIC_URL", "https://voxgate.example.com")
        .args(["pair", "--user", "alice"]);
    let out = run_command(command).await;
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("only this machine"));
}
