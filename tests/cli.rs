//! The `voxgate` binary as an operator runs it: help, start-up errors that say what to
//! set, serving, and a graceful stop.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch working directory, so the default `voxgate.db` and `voxgate.key` land there.
static WORKDIR: std::sync::LazyLock<tempfile::TempDir> =
    std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());

fn voxgate() -> Command {
    // A directory per run: parallel tests must not share one SQLite file.
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = WORKDIR.path().join(
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    cmd.current_dir(dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "eu-west-1");
    // Only what the test sets: no VOXGATE_* from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("VOXGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = voxgate();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_serve_setting_with_its_environment_twin() {
    let (code, out, _) = run(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    for (flag, env) in [
        ("--listen", "VOXGATE_LISTEN"),
        ("--skill-id", "VOXGATE_SKILL_ID"),
        (
            "--insecure-skip-verification",
            "VOXGATE_INSECURE_SKIP_VERIFICATION",
        ),
        ("--alexa-trust-roots", "VOXGATE_ALEXA_TRUST_ROOTS"),
        ("--alexa-cert-dir", "VOXGATE_ALEXA_CERT_DIR"),
    ] {
        assert!(
            out.contains(flag) && out.contains(env),
            "{flag} / {env} missing:\n{out}"
        );
    }
    assert!(
        out.contains("127.0.0.1:8080"),
        "default listen address shown"
    );
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("serve"));
}

#[test]
fn serve_without_a_skill_id_says_what_to_set() {
    let (code, _, err) = run(&["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--skill-id") && err.contains("VOXGATE_SKILL_ID"),
        "{err}"
    );
}

#[test]
fn a_malformed_skill_id_is_refused() {
    let (code, _, err) = run(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("VOXGATE_SKILL_ID", "my-skill")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("'my-skill' is not an Alexa skill id"), "{err}");
}

#[test]
fn skipping_verification_off_loopback_is_refused() {
    let (code, _, err) = run(
        &["serve", "--listen", "0.0.0.0:0"],
        &[
            ("VOXGATE_INSECURE_SKIP_VERIFICATION", "true"),
            (
                "VOXGATE_SKILL_ID",
                "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
            ),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("only allowed on a loopback address"), "{err}");
}

#[test]
fn an_unusable_trust_roots_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("roots.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for path in [not_pem.to_str().unwrap(), "/nonexistent/roots.pem"] {
        let (code, _, err) = run(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--alexa-trust-roots",
                path,
            ],
            &[(
                "VOXGATE_SKILL_ID",
                "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
            )],
        );
        assert_ne!(code, 0);
        assert!(
            err.contains("trust roots file") && err.contains(path),
            "{err}"
        );
    }
}

#[test]
fn a_missing_cert_dir_is_refused() {
    let (code, _, err) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--alexa-cert-dir",
            "/nonexistent/certs",
        ],
        &[(
            "VOXGATE_SKILL_ID",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
        )],
    );
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/certs"), "{err}");
}

#[test]
fn an_address_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(
        &["serve", "--listen", &addr],
        &[(
            "VOXGATE_SKILL_ID",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
        )],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot listen on") && err.contains("--listen"),
        "{err}"
    );
}

type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// `voxgate serve` on a free loopback port without verification, with `extra` flags: the
/// process, its log from the line after "listening on", the address, and the lines
/// before it.
fn serve_insecure(extra: &[&str]) -> (std::process::Child, Lines, String, Vec<String>) {
    let mut child = voxgate()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-skip-verification",
            "--skill-id",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut before = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            return (child, lines, addr, before);
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("voxgate did not report the address it bound: {before:?}");
}

#[test]
fn serve_runs_warns_when_insecure_and_stops_gracefully() {
    let (mut child, _lines, addr, before) = serve_insecure(&[]);
    assert!(
        before.iter().any(|l| l.contains("verification is OFF")),
        "a loud warning when verification is skipped: {before:?}"
    );

    let body = reqwest::blocking_get(&format!("http://{addr}/healthz"));
    assert!(body.contains("\"ok\""), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful stop exits 0, got {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "voxgate did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A second stop signal during the drain stops at once: the first waits for a request
/// whose body is still arriving, the second ends the process with 130 and says so.
#[test]
fn a_second_stop_signal_stops_at_once() {
    let (mut child, mut lines, addr, _) = serve_insecure(&["--body-timeout", "300"]);
    // A request whose body has not all arrived: the drain waits for it.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /alexa HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"version\""
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success());
    };
    signal("-INT");
    let mut said = Vec::new();
    while !said
        .iter()
        .any(|l: &String| l.contains("signal again to stop now"))
    {
        let Some(Ok(line)) = lines.next() else { break };
        said.push(line);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal waits for the request in flight"
    );
    signal("-INT");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a second signal did not stop voxgate"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("second stop signal: stopping now")),
        "{said:?} {rest:?}"
    );
}

/// A tiny blocking GET over a plain TCP socket (the test has no async runtime).
mod reqwest {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn blocking_get(url: &str) -> String {
        get_with(url, "")
    }

    /// A GET with extra header lines (each ending in CRLF).
    pub fn get_with(url: &str, headers: &str) -> String {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = TcpStream::connect(host).unwrap();
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }
}

#[test]
fn serve_refuses_to_run_without_a_skill_id_even_when_not_verifying() {
    let (code, _, err) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-skip-verification",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("no Alexa skill id is set: set --skill-id"),
        "{err}"
    );
}

#[test]
fn serve_refuses_the_local_key_file_off_loopback() {
    let (code, _, err) = run(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--skill-id",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("reachable from other machines") && err.contains("--kms-key-id"),
        "{err}"
    );
}

mod common;
use common::db;

/// Start-up lines (the sealing warning, the address) were once lost on PostgreSQL at the
/// default `info` level: the log filter dropped events first reached while the database
/// connection was being set up.
#[tokio::test]
async fn serve_logs_its_start_on_postgresql_at_the_default_level() {
    let database = db::TestDb::new(db::Backend::Postgres).await;
    let mut child = voxgate()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-skip-verification",
            "--skill-id",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
            "--database-url",
            &database.url,
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("listening on");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = lines.join().unwrap().join("\n");
    assert!(
        seen.contains("SECRETS ARE SEALED WITH A LOCAL KEY FILE"),
        "{seen}"
    );
    assert!(
        seen.contains("voxgate listening on http://127.0.0.1:"),
        "{seen}"
    );
}

const SKILL: &str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000000";

fn moto_url() -> String {
    std::env::var("VOXGATE_TEST_MOTO_URL").expect("VOXGATE_TEST_MOTO_URL (./scripts/test sets it)")
}

#[test]
fn check_config_says_everything_is_in_place_and_writes_nothing() {
    let moto = moto_url();
    let env = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let mut cmd = voxgate();
    let dir = cmd.get_current_dir().unwrap().to_owned();
    cmd.args([
        "check-config",
        "--skill-id",
        SKILL,
        "--listen",
        "127.0.0.1:0",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ok    settings",
        "ok    aws identity",
        "ok    sealing",
        "ok    store",
    ] {
        assert!(stdout.contains(line), "{line}:\n{stdout}");
    }
    assert!(stdout.contains("will be made at first start"), "{stdout}");
    assert!(stdout.contains("Everything voxgate serve needs is in place."));
    // A check only looks: no database, no key file.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn check_config_names_each_problem_in_one_sentence() {
    let (code, stdout, _) = run(
        &[
            "check-config",
            "--skill-id",
            SKILL,
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/voxgate",
            "--kms-key-id",
            "alias/voxgate",
        ],
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_MAX_ATTEMPTS", "1"),
        ],
    );
    assert_ne!(code, 0, "{stdout}");
    let fail = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("FAIL") && l.contains(name))
            .unwrap_or_else(|| panic!("no FAIL line for {name}:\n{stdout}"))
            .to_owned()
    };
    assert!(fail("aws identity").contains("set AWS credentials"));
    assert!(fail("sealing").contains("KMS: could not be reached"));
    assert!(fail("store").contains("cannot open the database"));
    // A bad setting is one line too.
    let (code, stdout, _) = run(&["check-config", "--skill-id", "nonsense"], &[]);
    assert_ne!(code, 0);
    assert!(stdout.starts_with("FAIL  settings"), "{stdout}");
}

#[test]
fn probes_metrics_on_their_own_address_and_request_ids() {
    let mut child = voxgate()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--insecure-skip-verification",
            "--skill-id",
            SKILL,
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut addr, mut metrics_addr) = (None, None);
    while (addr.is_none() || metrics_addr.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            metrics_addr = Some(rest.split('/').next().unwrap().to_owned());
        }
    }
    let (addr, metrics_addr) = (addr.unwrap(), metrics_addr.unwrap());

    let health = reqwest::blocking_get(&format!("http://{addr}/healthz"));
    assert!(health.contains("\"store\":\"sqlite\""), "{health}");
    let ready = reqwest::blocking_get(&format!("http://{addr}/readyz"));
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("\"ready\":true"), "{ready}");
    // Every response names its request; an id the client sent is not taken over.
    let sent = reqwest::get_with(
        &format!("http://{addr}/healthz"),
        "x-request-id: forged-by-client\r\n",
    );
    let id = sent
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id in {sent}"));
    assert!(id.starts_with("r_"), "{sent}");
    // A made-up method does not make a series of its own.
    let odd = std::net::TcpStream::connect(&addr).and_then(|mut stream| {
        use std::io::{Read as _, Write as _};
        write!(
            stream,
            "BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    });
    assert!(odd.unwrap().starts_with("HTTP/1.1 405"));
    // /metrics lives only on its own address, where it is Prometheus text.
    let main = reqwest::blocking_get(&format!("http://{addr}/metrics"));
    assert!(main.starts_with("HTTP/1.1 404"), "{main}");
    let metrics = reqwest::blocking_get(&format!("http://{metrics_addr}/metrics"));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    assert!(
        metrics.contains("voxgate_http_request_duration_seconds_bucket{route=\"/healthz\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("method=\"other\",status=\"405\""),
        "{metrics}"
    );
    assert!(!metrics.contains("BREW"), "{metrics}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "voxgate did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_config_looks_without_touching_and_catches_a_lost_key() {
    let mut cmd = voxgate();
    let dir = cmd.get_current_dir().unwrap().to_owned();
    let added = cmd.args(["tenant", "add", "acme"]).output().unwrap();
    assert!(added.status.success());
    let run_here = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
            .current_dir(&dir)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (_, stdout) = run_here(&[
        "check-config",
        "--skill-id",
        SKILL,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stdout.contains("ok    store"), "{stdout}");
    assert!(stdout.contains("ok    audit log"), "{stdout}");

    // A database one migration behind this version: reported, and not migrated.
    let url = format!("sqlite://{}", dir.join("voxgate.db").display());
    let migrations = || async {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut db)
            .await
            .unwrap();
        n
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let applied = runtime.block_on(async {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for statement in [
            "CREATE TABLE newest_migration AS SELECT * FROM _sqlx_migrations \
             WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
            "DELETE FROM _sqlx_migrations WHERE version = (SELECT version FROM newest_migration)",
        ] {
            sqlx::query(statement).execute(&mut db).await.unwrap();
        }
        migrations().await
    });
    let (_, stdout) = run_here(&[
        "check-config",
        "--skill-id",
        SKILL,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        stdout.contains("1 migration(s) are pending, which serve applies at start"),
        "{stdout}"
    );
    assert_eq!(
        runtime.block_on(migrations()),
        applied,
        "check-config migrated the database"
    );
    runtime.block_on(async {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for statement in [
            "INSERT INTO _sqlx_migrations SELECT * FROM newest_migration",
            "DROP TABLE newest_migration",
        ] {
            sqlx::query(statement).execute(&mut db).await.unwrap();
        }
    });
    assert!(run_here(&["tenant", "list"]).0);

    // The key that sealed what the database holds is gone: not "will be made".
    std::fs::remove_file(dir.join("voxgate.key")).unwrap();
    let (ok, stdout) = run_here(&[
        "check-config",
        "--skill-id",
        SKILL,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    let sealing = stdout.lines().find(|l| l.contains("sealing")).unwrap();
    assert!(
        sealing.starts_with("FAIL") && sealing.contains("holds secrets sealed with it"),
        "{stdout}"
    );
    assert!(!dir.join("voxgate.key").exists(), "no new key was made");

    // The database is gone but its audit checkpoints are not: lost, not new.
    std::fs::remove_file(dir.join("voxgate.db")).unwrap();
    let (ok, stdout) = run_here(&[
        "check-config",
        "--skill-id",
        SKILL,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        stdout.contains("was the database moved or lost"),
        "{stdout}"
    );
    assert!(!dir.join("voxgate.db").exists(), "no new database was made");
}
