//! Secrets never reach a log, the database or the disk: the whole flow through the real
//! binary (link an account, serve, ask what's running, pair the app, stop an instance with
//! the code the app shows), then a scan of every log line and every file voxgate wrote for
//! the ExternalId, the role ARN, the STS credentials moto issued, the device token, the
//! pairing code, the one-time code and the user's TOTP key.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::aws::{ec2_at, fresh_account_id, moto_data, seed_instance, spawn_moto};

/// A moto of this test's own: its record of every AssumeRole stays small.
static MOTO: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| spawn_moto(&[]));

fn voxgate(dir: &std::path::Path, log_filter: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    for (key, _) in std::env::vars() {
        if key.starts_with("VOXGATE_") || key.starts_with("AWS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env("VOXGATE_LOG", log_filter)
        .env("AWS_ENDPOINT_URL", &*MOTO)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

fn run(dir: &std::path::Path, log: &Arc<Mutex<String>>, args: &[&str]) -> String {
    let out = voxgate(dir, "debug").args(args).output().unwrap();
    log.lock()
        .unwrap()
        .push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn no_secret_reaches_a_log_the_database_or_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let account = fresh_account_id();
    let role_arn = format!("arn:aws:iam::{account}:role/voxgate-access");
    let ec2 = ec2_at(&MOTO, &account, "eu-west-1").await;
    seed_instance(&ec2, "web-1", &[], true).await;
    seed_instance(&ec2, "web-2", &[("voxgate:managed", "true")], true).await;

    run(dir.path(), &log, &["tenant", "add", "acme"]);
    run(
        dir.path(),
        &log,
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "alice",
            "--alexa-user-id",
            "amzn1.ask.account.ALICE",
        ],
    );
    let linked: serde_json::Value = serde_json::from_str(&run(
        dir.path(),
        &log,
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            &role_arn,
            "--region",
            "eu-west-1",
            "--trusted-account-id",
            "999988887777",
            "--json",
        ],
    ))
    .unwrap();
    let external_id = linked["external_id"].as_str().unwrap().to_owned();

    // Serve with every log target at trace, the most verbose level, in JSON.
    let mut child = voxgate(dir.path(), "trace")
        .env("VOXGATE_LOG_FORMAT", "json")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-skip-verification",
            "--skill-id",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let serve_log = Arc::clone(&log);
    let served = Arc::new(Mutex::new(String::new()));
    let served_lines = Arc::clone(&served);
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = addr_tx.send(rest.split(['"', ' ']).next().unwrap().to_owned());
            }
            serve_log.lock().unwrap().push_str(&line);
            served_lines.lock().unwrap().push_str(&line);
            line.clear();
        }
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        serve_log.lock().unwrap().push_str(&rest);
        served_lines.lock().unwrap().push_str(&rest);
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("voxgate serve started");

    let http = reqwest::Client::new();
    let alexa = |body: serde_json::Value| {
        let http = http.clone();
        let addr = addr.clone();
        async move {
            let bytes = http
                .post(format!("http://{addr}/alexa"))
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    let now = time::OffsetDateTime::now_utc;
    let response = alexa(common::intent_from(
        "amzn1.ask.account.ALICE",
        "ListInstancesIntent",
        &[],
        now(),
    ))
    .await;
    assert_eq!(
        common::speech(&response),
        "In Ireland, 2 instances are running: web-1 and web-2."
    );

    // The gate: pair the app, hold a stop, read the code from the app, say it.
    let pairing: serde_json::Value = serde_json::from_str(&run(
        dir.path(),
        &log,
        &["pair", "--user", "alice", "--json"],
    ))
    .unwrap();
    let pairing_code = pairing["code"].as_str().unwrap().to_owned();
    let paired: serde_json::Value = serde_json::from_slice(
        &http
            .post(format!("http://{addr}/api/v1/companion/pair"))
            .body(serde_json::json!({"code": pairing_code}).to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let device_token = paired["token"].as_str().unwrap().to_owned();
    let held = alexa(common::intent_from(
        "amzn1.ask.account.ALICE",
        "StopInstanceIntent",
        &[("instance", "web two")],
        now(),
    ))
    .await;
    let challenge = held["sessionAttributes"]["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!("http://{addr}/api/v1/companion/challenges"))
            .bearer_auth(&device_token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let code = pending["challenges"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut say_code = common::intent_from(
        "amzn1.ask.account.ALICE",
        "VerifyCodeIntent",
        &[("code", &code)],
        now(),
    );
    say_code["session"]["attributes"] = serde_json::json!({"challengeId": challenge});
    assert_eq!(
        common::speech(&alexa(say_code).await),
        "Stopping web-2 now."
    );

    // What the operator's Prometheus sees of that flow.
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "voxgate_alexa_requests_total{type=\"IntentRequest\",intent=\"ListInstancesIntent\"} 1",
        "voxgate_alexa_requests_total{type=\"IntentRequest\",intent=\"VerifyCodeIntent\"} 1",
        "voxgate_challenges_total{outcome=\"held\"} 1",
        "voxgate_challenges_total{outcome=\"confirmed\"} 1",
        "voxgate_challenges_total{outcome=\"executed\"} 1",
        "voxgate_sts_calls_total{result=\"ok\"} 2",
        "voxgate_credential_cache_total{result=\"miss\"}",
        "voxgate_audit_records_total{outcome=\"paired\"} 1",
        "voxgate_http_request_duration_seconds_bucket{route=\"/alexa\",method=\"POST\",status=\"200\",le=\"8\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert!(!metrics.contains("voxgate_audit_write_failures_total 1"));

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "voxgate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap();

    // What moto issued for this account.
    let data = moto_data(&MOTO).await;
    let issued: Vec<&serde_json::Value> = data["sts"]["AssumedRole"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role_arn"] == role_arn.as_str())
        .collect();
    assert_eq!(
        issued.len(),
        2,
        "voxgate assumed the role twice: to read, and for the stop"
    );
    let mut secrets = vec![
        ("ExternalId", external_id.clone()),
        ("role ARN", role_arn.clone()),
        ("AWS account id", account.clone()),
    ];
    for record in issued {
        assert_eq!(record["external_id"], external_id.as_str());
        secrets.push((
            "STS secret key",
            record["secret_access_key"].as_str().unwrap().to_owned(),
        ));
        secrets.push((
            "STS session token",
            record["session_token"].as_str().unwrap().to_owned(),
        ));
        secrets.push((
            "STS access key id",
            record["access_key_id"].as_str().unwrap().to_owned(),
        ));
    }

    // The user's TOTP key, opened the way voxgate does, to look for it in the clear.
    let store = voxgate::store::connect(&format!("sqlite://{}/voxgate.db", dir.path().display()))
        .await
        .unwrap();
    let alice = store.users(None).await.unwrap().remove(0);
    let sealed = store
        .totp_key(&alice.id)
        .await
        .unwrap()
        .expect("a TOTP key");
    let sealer =
        voxgate::cloud::seal::Sealer::local_key_file(&dir.path().join("voxgate.key")).unwrap();
    let ctx = voxgate::cloud::seal::SealContext::new(
        alice.tenant_id.as_str(),
        voxgate::cloud::seal::Purpose::TotpKey,
        alice.id.as_str(),
    );
    let totp_key = sealer.open(&sealed, &ctx).await.unwrap();
    secrets.push(("device token", device_token.clone()));
    secrets.push(("pairing code", pairing_code.replace('-', "")));
    secrets.push(("TOTP key (hex)", hex::encode(totp_key.as_slice())));
    // Six digits can occur by chance; look for the code as a value anywhere.
    for pattern in [
        format!("\"{code}\""),
        format!("={code}"),
        format!(": {code}"),
        format!("code {code}"),
    ] {
        secrets.push(("one-time code", pattern));
    }

    // Every line of the service is JSON, and the lines of one request carry its id.
    let served = served.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = served
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request_id = |line: &serde_json::Value| {
        line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find_map(|s| s["request_id"].as_str()))
            .map(str::to_owned)
    };
    let stop_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["path"] == "/alexa"))
        })
        .collect();
    assert!(stop_lines.len() > 3, "requests log in their span");
    assert!(
        stop_lines
            .iter()
            .all(|l| request_id(l).is_some_and(|id| id.starts_with("r_"))),
        "every line of a request names it"
    );
    // Also what the skill does for the request in its own task (here: holding the stop).
    let hold = lines
        .iter()
        .find(|l| l.to_string().contains("INSERT INTO challenges"))
        .expect("the hold's statement is logged at trace");
    assert!(
        request_id(hold).is_some_and(|id| id.starts_with("r_")),
        "the skill's work carries the request id: {hold}"
    );
    let ids: std::collections::BTreeSet<String> =
        stop_lines.iter().filter_map(|l| request_id(l)).collect();
    assert!(
        ids.len() >= 3,
        "one id per request, not one for all: {ids:?}"
    );

    let log = log.lock().unwrap().clone();
    assert!(log.contains("DEBUG"), "the scan ran with debug logging");
    for (file, bytes) in files_under(dir.path()) {
        assert!(
            !bytes
                .windows(totp_key.len())
                .any(|w| w == totp_key.as_slice()),
            "the TOTP key appears in {file}"
        );
    }
    let files: Vec<(String, String)> = files_under(dir.path())
        .into_iter()
        .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned()))
        .collect();
    for (what, secret) in &secrets {
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} appears in the log: {}", {
                let i = line.find(secret.as_str()).unwrap();
                &line[i.saturating_sub(700)..(i + 100).min(line.len())]
            });
        }
        // The secrets are ASCII, so a lossy text view finds them (str search is fast).
        for (file, text) in &files {
            assert!(
                !text.contains(secret.as_str()),
                "the {what} appears in {file}"
            );
        }
    }
}
