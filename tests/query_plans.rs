//! Every query a request runs is served by an index: the statements voxgate really runs
//! during a conversation (speaker lookup, a read, a hold, a wrong and a right code, a
//! code with nothing waiting, what's waiting, the companion app's list and deny) are
//! captured from sqlx's statement log and each one's SQLite query plan is read. A full
//! scan of a table that grows with tenants, users or challenges would make every request
//! slower as the service grows (issue 12's scale run: 115 ms a request at 100,000 tenants).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::scene::*;
use common::*;
use serde_json::{Value, json};
use sqlx::{Connection as _, Row as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

/// Tables of a row or a few that may be read whole; any other table (or alias) read from
/// end to end on a request is a defect: it grows with tenants, users or challenges.
const SMALL: &[&str] = &["audit_head", "service_secrets"];

static RECORDING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Keeps the SQL of every statement sqlx logs while [`RECORDING`] is on.
struct Statements;

#[derive(Default)]
struct StatementText {
    summary: String,
    statement: String,
}

impl Visit for StatementText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_owned(),
            "db.statement" if self.statement.is_empty() => {
                self.statement = format!("{value:?}");
            }
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" || !RECORDING.load(Ordering::SeqCst) {
            return;
        }
        let mut text = StatementText::default();
        event.record(&mut text);
        // sqlx logs a short statement whole as its summary, a long one in db.statement.
        let sql = if text.statement.trim().is_empty() {
            text.summary
        } else {
            text.statement
        };
        let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if !sql.is_empty() {
            STATEMENTS.lock().unwrap().insert(sql);
        }
    }
}

/// `voxgate pair --user NAME --json` against the server's database: the pairing code.
async fn pairing_code(server: &TestServer, user: &str) -> String {
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
    let pairing: Value = serde_json::from_slice(&out.stdout).unwrap();
    pairing["code"].as_str().unwrap().to_owned()
}

/// The whole-table reads in `sql`'s SQLite query plan (a table is named by its alias if
/// it has one, so anything but a [`SMALL`] table counts).
async fn sqlite_full_scans(conn: &mut sqlx::SqliteConnection, sql: &str) -> Vec<String> {
    let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN failed for {sql}: {e}"));
    rows.iter()
        .map(|row| row.get::<String, _>("detail"))
        .filter(|detail| {
            let Some(rest) = detail.strip_prefix("SCAN ") else {
                return false;
            };
            // The rows of an INSERT's VALUES are "scanned" too.
            let table = rest.split_whitespace().next().unwrap_or("");
            !SMALL.contains(&table)
                && !rest.contains("VALUES CLAUSE")
                && !rest.contains("CONSTANT ROW")
        })
        .collect()
}

/// The whole-table reads (of all but [`SMALL`] tables) in `sql`'s generic PostgreSQL plan, with
/// sequential scans made as dear as they can be: a sequential scan left, or an index read
/// from end to end (no index condition), means no index can serve the statement.
async fn postgres_full_scans(conn: &mut sqlx::PgConnection, sql: &str) -> Vec<String> {
    let parameters = (1..=64)
        .take_while(|n| sql.contains(&format!("${n}")))
        .count();
    sqlx::query(&format!("PREPARE planned AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("PREPARE failed for {sql}: {e}"));
    let arguments = if parameters == 0 {
        String::new()
    } else {
        format!("({})", vec!["NULL"; parameters].join(", "))
    };
    // The plan is of type json, which is text on the wire.
    let plan: String = sqlx::query(&format!("EXPLAIN (FORMAT JSON) EXECUTE planned{arguments}"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .try_get_unchecked(0)
        .unwrap();
    sqlx::query("DEALLOCATE planned")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let mut scans = Vec::new();
    let mut nodes = vec![&plan[0]["Plan"]];
    while let Some(node) = nodes.pop() {
        let kind = node["Node Type"].as_str().unwrap_or("");
        let relation = node["Relation Name"].as_str().unwrap_or("");
        let whole = match kind {
            "Seq Scan" => true,
            "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" => {
                node.get("Index Cond").is_none()
            }
            _ => false,
        };
        if whole && !SMALL.contains(&relation) {
            let index = node["Index Name"].as_str().unwrap_or("");
            scans.push(format!("{kind} {relation} {index}"));
        }
        if let Some(children) = node["Plans"].as_array() {
            nodes.extend(children);
        }
    }
    scans
}

/// Records the statements one conversation runs on `backend` and returns the scans of
/// growing tables in their plans, each with its statement.
async fn full_scans_of_a_conversation(backend: Backend) -> Vec<String> {
    // One conversation at a time: the statement log is one for the test binary.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
    let _turn = ONE_AT_A_TIME.lock().await;
    SUBSCRIBER.call_once(|| {
        tracing::subscriber::set_global_default(Registry::default().with(Statements)).unwrap();
    });
    STATEMENTS.lock().unwrap().clear();
    let s = scene(backend).await;
    let code = pairing_code(&s.server, "alice").await;
    let http = reqwest::Client::new();

    RECORDING.store(true, Ordering::SeqCst);
    // A read, then a change held and approved after one wrong code.
    let listed = s.ask("ListInstancesIntent", &[]).await;
    assert!(speech(&listed).contains("web-1"), "{listed}");
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let right = code_for(&s, &id).await;
    let wrong = s
        .server
        .say(say_code(&s.server, ALICE, &id, &wrong_code(&right, 1)))
        .await;
    assert!(speech(&wrong).contains("didn't match"), "{wrong}");
    let done = s.server.say(say_code(&s.server, ALICE, &id, &right)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    // The same code again, with nothing waiting.
    let again = s.server.say(say_code(&s.server, ALICE, &id, &right)).await;
    assert!(!speech(&again).is_empty());
    // And outside that conversation, with nothing waiting: checked against the codes that
    // approved something lately.
    let mut unprompted = say_code(&s.server, ALICE, &id, &right);
    unprompted["session"]["attributes"] = json!({});
    let reused = s.server.say(unprompted).await;
    assert!(speech(&reused).contains("already"), "{reused}");
    // Pairing, then the app lists what waits and denies it.
    let (_, waiting_id) = s.hold("StopInstanceIntent", "build-2").await;
    let waiting = s.ask("WhatIsWaitingIntent", &[]).await;
    assert!(speech(&waiting).contains("build-2"), "{waiting}");
    let paired: Value = http
        .post(format!("{}/api/v1/companion/pair", s.server.base_url))
        .body(json!({ "code": code }).to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let token = paired["token"].as_str().unwrap().to_owned();
    let listed: Value = http
        .get(format!("{}/api/v1/companion/challenges", s.server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(listed["challenges"][0]["id"], waiting_id.as_str());
    let denied = http
        .post(format!(
            "{}/api/v1/companion/challenges/{waiting_id}/deny",
            s.server.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    // The replay ledger writes behind every 100 ms: its statements too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    RECORDING.store(false, Ordering::SeqCst);

    let statements = STATEMENTS.lock().unwrap().clone();
    assert!(
        statements.iter().any(|s| s.contains("alexa_user_id")),
        "the speaker lookup was not captured: {statements:#?}"
    );
    assert!(
        statements.len() >= 15,
        "too few statements captured to mean anything: {statements:#?}"
    );
    let mut scans = Vec::new();
    let planned = statements.iter().filter(|sql| {
        let first = sql.split_whitespace().next().unwrap_or("").to_uppercase();
        matches!(first.as_str(), "SELECT" | "UPDATE" | "DELETE" | "INSERT")
    });
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&s.server.db.url)
                .await
                .unwrap();
            for sql in planned {
                for scan in sqlite_full_scans(&mut conn, sql).await {
                    scans.push(format!("{scan}: {sql}"));
                }
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&s.server.db.url).await.unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("SET plan_cache_mode = force_generic_plan")
                .execute(&mut conn)
                .await
                .unwrap();
            for sql in planned {
                for scan in postgres_full_scans(&mut conn, sql).await {
                    scans.push(format!("{scan}: {sql}"));
                }
            }
        }
    }
    scans
}

on_both_backends!(every_query_a_conversation_runs_is_served_by_an_index);
async fn every_query_a_conversation_runs_is_served_by_an_index(backend: Backend) {
    let scans = full_scans_of_a_conversation(backend).await;
    assert!(
        scans.is_empty(),
        "{} statements read a whole table:\n{}",
        scans.len(),
        scans.join("\n")
    );
}
