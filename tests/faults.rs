//! Faults, with real parts: AWS (moto_server, a process of this test's own) stopped in the
//! middle of a flow and started again, STS and KMS hanging, PostgreSQL connections cut
//! while a confirm runs, and the voxgate process killed with SIGKILL at each step between
//! a hold and its recorded outcome. Every time the person gets a clear answer, nothing is
//! half done, no operation runs twice, and work resumes once the fault is gone.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use common::aws::*;
use common::process::*;
use common::scene::*;
use common::*;

/// Alexa waits 8 s for an answer.
const ALEXA_WAITS: StdDuration = StdDuration::from_secs(8);

async fn within_alexas_wait<F: std::future::Future>(answer: F) -> F::Output {
    tokio::time::timeout(ALEXA_WAITS, answer)
        .await
        .expect("an answer within the 8 s Alexa waits")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto_server of this test's own, which the test stops and starts again on the same
/// port (moto keeps its data in memory: a restarted one starts empty, like a new region).
struct Moto {
    port: u16,
    url: String,
    child: Option<Child>,
}

impl Moto {
    fn start() -> Self {
        let port = free_port();
        let mut moto = Self {
            port,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
        };
        moto.up();
        moto
    }

    fn up(&mut self) {
        let server = std::env::var("VOXGATE_MOTO_SERVER")
            .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
        let log = std::env::temp_dir().join(format!("voxgate-faults-moto-{}.log", self.port));
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {server}: {e}; run ./scripts/test"));
        self.child = Some(child);
        let deadline = Instant::now() + StdDuration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "moto_server did not start on port {}: {}",
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(StdDuration::from_millis(100));
        }
    }

    /// Stops it at once (SIGKILL): connections are refused from now on.
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.down();
    }
}

async fn current_code(server: &TestServer, user: &voxgate::store::User, id: &str) -> String {
    let held = server.gate.challenge_of(user, id).await.unwrap().unwrap();
    server.gate.current_code(&held).await.unwrap().code
}

async fn chain_verifies(server: &TestServer) {
    let records = server.store.audit_records(None, 0, 10_000).await.unwrap();
    assert_eq!(server.gate.audit().verify(&records), Ok(()));
}

const UNREACHABLE: &str = "I couldn't reach AWS just now. Nothing was changed. Please try again.";

#[tokio::test]
async fn aws_stopped_mid_flow_gets_clear_answers_and_work_resumes_when_it_returns() {
    let mut moto = Moto::start();
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &moto.url, |_| {}).await;
    let account = fresh_account_id();
    let ec2 = ec2_at(&moto.url, &account, "eu-west-1").await;
    seed_instance(&ec2, "web-1", MANAGED, true).await;
    let acme = server.tenant("acme").await;
    let alice = server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &account, "eu-west-1").await;

    // Held while AWS is there; AWS goes away before the code is said.
    let held = server
        .say(critical(&server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let id = challenge_id(&held);
    let code = current_code(&server, &alice, &id).await;
    moto.down();
    let answer = within_alexas_wait(server.say(say_code(&server, ALICE, &id, &code))).await;
    assert_eq!(speech(&answer), UNREACHABLE);
    assert_eq!(outcomes(&server).await, ["held", "confirmed", "failed"]);
    let row = server.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(row.state, "failed", "closed: the code runs nothing later");

    // While AWS is away, reading and asking for a change are answered just as clearly, and
    // nothing is held.
    for (intent, slots) in [
        ("ListInstancesIntent", vec![]),
        ("StopInstanceIntent", vec![("instance", "web-1")]),
    ] {
        let answer =
            within_alexas_wait(server.say(intent_from(ALICE, intent, &slots, server.now()))).await;
        assert_eq!(speech(&answer), UNREACHABLE, "{intent}");
    }
    assert!(server.gate.pending(&alice.id).await.unwrap().is_none());

    // AWS is back (empty, as a restarted moto is: the instance is created again). A
    // restarted moto has also forgotten the sessions it issued, which real STS would not;
    // an hour later voxgate's cached session has run out anyway and it asks for a new one.
    moto.up();
    server.clock.advance(time::Duration::hours(1));
    let ec2 = ec2_at(&moto.url, &account, "eu-west-1").await;
    let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
    let listed = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert!(speech(&listed).contains("web-1"), "{}", speech(&listed));
    let held = server
        .say(critical(&server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let id = challenge_id(&held);
    let code = current_code(&server, &alice, &id).await;
    let done = server.say(say_code(&server, ALICE, &id, &code)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    assert_ne!(state_of(&ec2, &web1).await, "running");
    assert_eq!(
        outcomes(&server).await,
        [
            "held",
            "confirmed",
            "failed",
            "held",
            "confirmed",
            "executed"
        ]
    );
    chain_verifies(&server).await;
}

#[tokio::test]
async fn sts_hanging_at_the_confirm_changes_nothing_and_is_said_in_time() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    s.proxy.hang_on("AssumeRole");
    let answer = within_alexas_wait(s.server.say(say_code(&s.server, ALICE, &id, &code))).await;
    assert_eq!(speech(&answer), UNREACHABLE);
    assert_eq!(
        count(&s.proxy, "StopInstances"),
        0,
        "the change was never sent"
    );
    assert_eq!(state_of(&s.ec2, &s.web1).await, "running");
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "failed"]);
}

#[tokio::test]
async fn kms_hanging_is_answered_in_time_and_the_code_works_once_it_answers() {
    // Secrets sealed with KMS (reached through the proxy).
    let proxy = RecordingProxy::start(&MOTO).await;
    let key_id = aws_sdk_kms::Client::new(&sdk_config(&MOTO))
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let with_kms = |args: &mut voxgate::config::ServeArgs| {
        args.sealing.kms_key_id = Some(key_id.clone());
    };
    let first = TestServer::start_full(&PKI, Backend::Sqlite, &proxy.url, with_kms).await;
    let account = fresh_account_id();
    let ec2 = ec2_in(&account, "eu-west-1").await;
    let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
    let acme = first.tenant("acme").await;
    let alice = first.enrol(&acme, "alice", ALICE).await;
    let kms_sealer = voxgate::cloud::seal::Sealer::kms(
        aws_sdk_kms::Client::new(&sdk_config(&proxy.url)),
        key_id.clone(),
    );
    voxgate::accounts::link(
        first.store.as_ref(),
        &kms_sealer,
        &acme,
        &voxgate::store::AccountName::parse("prod").unwrap(),
        &voxgate::cloud::arn::RoleArn::parse(&format!(
            "arn:aws:iam::{account}:role/voxgate-access"
        ))
        .unwrap(),
        &voxgate::cloud::arn::Region::parse("eu-west-1").unwrap(),
        0,
    )
    .await
    .unwrap();
    let (_, id) = {
        let held = first
            .say(critical(&first, ALICE, "StopInstanceIntent", "web-1"))
            .await;
        (held.clone(), challenge_id(&held))
    };
    let clock = first.clock.clone();
    let db = first.into_db();

    // voxgate starts afresh (its own key opened, nothing else unsealed in memory); then KMS
    // stops answering.
    let server = TestServer::start_on(&PKI, db, sdk_config(&proxy.url), clock, with_kms).await;
    proxy.hang_on("Decrypt");
    let code = {
        // The code the app shows, computed with KMS answering directly.
        let direct = voxgate::cloud::seal::Sealer::kms(
            aws_sdk_kms::Client::new(&sdk_config(&MOTO)),
            key_id.clone(),
        );
        let gate = voxgate::gate::Gate::new(
            std::sync::Arc::clone(&server.store),
            std::sync::Arc::new(direct),
            server.gate.audit().clone(),
            std::sync::Arc::new(server.clock.clone()),
            voxgate::gate::DEFAULT_TTL,
        );
        let held = gate.challenge_of(&alice, &id).await.unwrap().unwrap();
        gate.current_code(&held).await.unwrap().code
    };
    let answer = within_alexas_wait(server.say(say_code(&server, ALICE, &id, &code))).await;
    let said = speech(&answer);
    assert_eq!(
        said,
        "The service that protects your voxgate key didn't work just now, so I didn't do \
         anything. Nothing was changed. Please try again; if it keeps happening, tell your \
         voxgate operator."
    );
    assert_eq!(count(&proxy, "StopInstances"), 0);
    assert_eq!(state_of(&ec2, &web1).await, "running");

    // KMS answers again: the same code, still within its time, runs the operation once.
    proxy.clear_delays();
    let done = server.say(say_code(&server, ALICE, &id, &code)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    assert_eq!(count(&proxy, "StopInstances"), 1);
    assert_ne!(state_of(&ec2, &web1).await, "running");
    chain_verifies(&server).await;
}

/// PostgreSQL drops every connection to `db` and refuses new ones for `down`, as when the
/// server restarts (only this test's database is touched).
async fn restart_database(db: &TestDb, down: StdDuration) {
    use sqlx::Connection as _;
    let name = url::Url::parse(&db.url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = std::env::var("VOXGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut conn)
        .await
        .unwrap();
    let cut: Vec<(bool,)> =
        sqlx::query_as("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(!cut.is_empty(), "voxgate had connections to cut");
    tokio::time::sleep(down).await;
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn postgresql_restarting_during_a_confirm_loses_nothing() {
    let s = scene(Backend::Postgres).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let mut events = s.server.gate.subscribe();
    // The change takes 1.8 s at AWS (inside the 2 s a call may take); meanwhile
    // PostgreSQL goes away for 0.4 s (the event feed's reconnect waits a second after a
    // failed attempt, and is back before the outcome is announced).
    s.proxy
        .delay_on("StopInstances", StdDuration::from_millis(1800));
    let (answer, ()) = tokio::join!(
        within_alexas_wait(s.server.say(say_code(&s.server, ALICE, &id, &code))),
        async {
            wait_for(&s.proxy, "StopInstances", 1).await;
            restart_database(&s.server.db, StdDuration::from_millis(400)).await;
            // The cut really came between the approval and the outcome.
            assert_eq!(outcomes(&s.server).await, ["held", "confirmed"]);
        }
    );
    assert_eq!(speech(&answer), "Stopping web-1 now.");
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
    assert_ne!(state_of(&s.ec2, &s.web1).await, "running");
    // The outcome is recorded on the new connections, and the live events (carried by
    // PostgreSQL between replicas) still reach the app.
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "executed"]);
    let heard = tokio::time::timeout(StdDuration::from_secs(10), async {
        loop {
            let event = events.recv().await.unwrap();
            if event.kind != "confirmed" {
                return event.kind;
            }
        }
    })
    .await
    .expect("the outcome reaches the app");
    assert_eq!(heard, "executed");
    chain_verifies(&s.server).await;

    // And the next request is served as usual.
    let listed = s.ask("ListInstancesIntent", &[]).await;
    assert!(speech(&listed).contains("web-1"), "{}", speech(&listed));
}

// ---- voxgate killed (SIGKILL) at each step between a hold and its recorded outcome ----

/// Whether `challenge` was closed as outcome-unknown by voxgate's start after a stop (not
/// by the deadline of its own call).
fn closed_by_the_restart(db: &TestDb, challenge: &str) -> bool {
    records(db).iter().any(|r| {
        r["challenge_id"] == challenge
            && r["outcome"] == "outcome-unknown"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("voxgate stopped while running it"))
    })
}

async fn wait_for(proxy: &RecordingProxy, action: &str, n: usize) {
    tokio::time::timeout(StdDuration::from_secs(10), async {
        while count(proxy, action) < n {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{action} reached AWS"));
}

#[tokio::test]
async fn killed_at_each_step_every_challenge_is_reported_honestly_and_nothing_runs_twice() {
    let proxy = RecordingProxy::start(&MOTO).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let account = fresh_account_id();
    let ec2 = ec2_in(&account, "eu-west-1").await;
    let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
    // Set up as an operator would.
    set_up_acme(&db, &account);
    let voxgate = Voxgate::start(&db, &proxy.url);
    let token = voxgate.pair(&db).await;

    // 1. Killed while the operation waits for its code: after the restart the app still
    //    shows it, and its code runs it once.
    let (first, code) = hold(&voxgate, &token, "StopInstanceIntent").await;
    voxgate.kill();
    let voxgate = Voxgate::start(&db, &proxy.url);
    let (_, again) = {
        let shown = voxgate.waiting(&token).await;
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(shown[0]["id"], first.as_str());
        (first.clone(), shown[0]["code"].as_str().unwrap().to_owned())
    };
    let _ = code;
    let done = voxgate.say(code_said(&first, &again)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    assert_eq!(count(&proxy, "StopInstances"), 1);

    // 2. Killed while the change is on its way and before AWS has it: recorded as
    //    outcome-unknown at the restart; AWS never ran it, and it is never retried.
    proxy.hang_on("StartInstances");
    let (second, code) = hold(&voxgate, &token, "StartInstanceIntent").await;
    let pending = tokio::spawn({
        let http = voxgate.http.clone();
        let url = format!("{}/alexa", voxgate.base);
        let body = bytes(&code_said(&second, &code));
        async move { http.post(url).body(body).send().await.map(|_| ()) }
    });
    wait_for(&proxy, "StartInstances", 1).await;
    voxgate.kill();
    let _ = pending.await;
    let voxgate = Voxgate::start(&db, &proxy.url);
    assert_eq!(
        stories(&db)[1],
        ["held", "confirmed", "outcome-unknown"],
        "reported at once after the restart"
    );
    assert!(
        closed_by_the_restart(&db, &second),
        "closed because voxgate stopped, not by a timeout of its own"
    );
    assert!(voxgate.waiting(&token).await.is_empty());
    let retold = voxgate.say(code_said(&second, &code)).await;
    assert_eq!(
        speech(&retold),
        "That code was already used, so I didn't run anything again."
    );
    assert_eq!(state_of(&ec2, &web1).await, "stopped", "AWS never had it");

    // 3. Killed after AWS carried the change out, before its answer came back: unknown
    //    too, and not run again.
    proxy.clear_delays();
    proxy.hang_after_forwarding("StartInstances");
    let (third, code) = hold(&voxgate, &token, "StartInstanceIntent").await;
    let pending = tokio::spawn({
        let http = voxgate.http.clone();
        let url = format!("{}/alexa", voxgate.base);
        let body = bytes(&code_said(&third, &code));
        async move { http.post(url).body(body).send().await.map(|_| ()) }
    });
    wait_for(&proxy, "StartInstances", 2).await;
    // moto has it (the proxy holds the answer back).
    tokio::time::timeout(StdDuration::from_secs(10), async {
        while state_of(&ec2, &web1).await == "stopped" {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    })
    .await
    .expect("AWS carried the change out");
    voxgate.kill();
    let _ = pending.await;
    let voxgate = Voxgate::start(&db, &proxy.url);
    assert_eq!(stories(&db)[2], ["held", "confirmed", "outcome-unknown"]);
    assert!(closed_by_the_restart(&db, &third));

    // 4. Killed right after the outcome was recorded: it stays recorded as it happened.
    let (fourth, code) = hold(&voxgate, &token, "StopInstanceIntent").await;
    let done = voxgate.say(code_said(&fourth, &code)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    voxgate.kill();
    let voxgate = Voxgate::start(&db, &proxy.url);

    // Every challenge's story, one each; each change went to AWS once.
    assert_eq!(
        stories(&db),
        [
            vec!["held", "confirmed", "executed"],
            // (The code said again after the restart is recorded as reused.)
            vec!["held", "confirmed", "outcome-unknown", "reuse"],
            vec!["held", "confirmed", "outcome-unknown"],
            vec!["held", "confirmed", "executed"],
        ]
    );
    assert_eq!(count(&proxy, "StopInstances"), 2);
    assert_eq!(count(&proxy, "StartInstances"), 2);
    assert_eq!(state_of(&ec2, &web1).await, "stopped");
    assert!(voxgate.waiting(&token).await.is_empty());
    // Four kills later the audit chain is whole.
    let verified = cli(&db, &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("intact"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    voxgate.kill();
}
