//! voxgate as the operator runs it: `voxgate serve` as a process of its own, set up with
//! the operator CLI, a companion device paired through its API, and requests as Alexa sends
//! them (verification off: the process is on loopback).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration as StdDuration;

use serde_json::{Value, json};

use super::scene::{ALICE, challenge_id};
use super::{SKILL_ID, TestDb, bytes, intent_from};

/// `voxgate serve` as a process of its own (request verification off, on loopback), on
/// `db`, reaching AWS at `aws`.
pub struct Voxgate {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(db.dir.path())
        .args(args)
        .env("VOXGATE_DATABASE_URL", &db.url)
        .env("VOXGATE_TRUSTED_ACCOUNT_ID", "123456789012")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "voxgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Voxgate {
    pub fn start(db: &TestDb, aws: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxgate"))
            .current_dir(db.dir.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--insecure-skip-verification",
                "--skill-id",
                SKILL_ID,
            ])
            .env("VOXGATE_DATABASE_URL", &db.url)
            .env("AWS_ENDPOINT_URL", aws)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        // Inside `Self` at once: dropped (killed) however the start below ends.
        let mut voxgate = Self {
            child,
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(StdDuration::from_secs(30))
                .build()
                .unwrap(),
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                    let _ = tx.send(Ok(url));
                } else if line.contains("ERROR") {
                    let _ = tx.send(Err(line));
                }
            }
        });
        voxgate.base = rx
            .recv_timeout(StdDuration::from_secs(60))
            .expect("voxgate serve did not start")
            .unwrap_or_else(|line| panic!("voxgate serve: {line}"));
        voxgate
    }

    /// Ends the process at once, as a crash or `kill -9` would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn say(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/alexa", self.base))
            .header("content-type", "application/json")
            .body(bytes(&body))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    pub async fn pair(&self, db: &TestDb) -> String {
        let out = cli(db, &["pair", "--user", "alice", "--json"]);
        let code: Value = serde_json::from_slice(&out.stdout).unwrap();
        let response: Value = self
            .http
            .post(format!("{}/api/v1/companion/pair", self.base))
            .body(json!({"code": code["code"]}).to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        response["token"].as_str().unwrap().to_owned()
    }

    /// What the companion app shows waiting for a code.
    pub async fn waiting(&self, token: &str) -> Vec<Value> {
        let response: Value = self
            .http
            .get(format!("{}/api/v1/companion/challenges", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        response["challenges"].as_array().unwrap().clone()
    }
}

impl Drop for Voxgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alice asks for `intent` on web-1 now (real time: the process has its own clock).
pub fn asked(intent: &str) -> Value {
    intent_from(
        ALICE,
        intent,
        &[("instance", "web-1")],
        time::OffsetDateTime::now_utc(),
    )
}

pub fn code_said(challenge: &str, code: &str) -> Value {
    let trimmed = code.trim_start_matches('0');
    let spoken = if trimmed.len() >= 4 { trimmed } else { code };
    let mut body = intent_from(
        ALICE,
        "VerifyCodeIntent",
        &[("code", spoken)],
        time::OffsetDateTime::now_utc(),
    );
    body["session"]["attributes"] = json!({"challengeId": challenge});
    body
}

/// With the operator CLI: tenant `acme`, its user `alice` (Alexa id [`ALICE`]) and the
/// account `prod` linked to `arn:aws:iam::ACCOUNT:role/voxgate-access` in eu-west-1.
pub fn set_up_acme(db: &TestDb, account: &str) {
    let role = format!("arn:aws:iam::{account}:role/voxgate-access");
    for args in [
        vec!["tenant", "add", "acme"],
        vec![
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "alice",
            "--alexa-user-id",
            ALICE,
        ],
        vec![
            "account",
            "link",
            "--tenant",
            "acme",
            "--name",
            "prod",
            "--role-arn",
            &role,
            "--region",
            "eu-west-1",
        ],
    ] {
        cli(db, &args);
    }
}

/// Every audit record, oldest first (`voxgate audit export`).
pub fn records(db: &TestDb) -> Vec<Value> {
    let out = cli(db, &["audit", "export", "--format", "jsonl"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Each challenge's outcomes, in the order the challenges were held.
pub fn stories(db: &TestDb) -> Vec<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_challenge: std::collections::HashMap<String, Vec<String>> = Default::default();
    for record in records(db) {
        let Some(challenge) = record["challenge_id"].as_str() else {
            continue;
        };
        if !by_challenge.contains_key(challenge) {
            order.push(challenge.to_owned());
        }
        by_challenge
            .entry(challenge.to_owned())
            .or_default()
            .push(record["outcome"].as_str().unwrap().to_owned());
    }
    order
        .into_iter()
        .map(|c| by_challenge.remove(&c).unwrap())
        .collect()
}

/// Holds `intent` on web-1; the challenge id and the code the app shows for it.
pub async fn hold(voxgate: &Voxgate, token: &str, intent: &str) -> (String, String) {
    let held = voxgate.say(asked(intent)).await;
    let id = challenge_id(&held);
    let shown = voxgate.waiting(token).await;
    let view = shown
        .iter()
        .find(|v| v["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the app shows {id}: {shown:?}"));
    (id, view["code"].as_str().unwrap().to_owned())
}

impl Voxgate {
    /// The companion event stream of a device (`token`): counts the challenges it hears
    /// created until `want`, or five minutes pass.
    pub async fn count_created(&self, token: &str, want: usize) -> tokio::task::JoinHandle<usize> {
        let mut stream = self
            .http
            .get(format!("{}/api/v1/companion/events", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut created = 0;
            let mut text = String::new();
            let deadline = tokio::time::Instant::now() + StdDuration::from_secs(300);
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
}
