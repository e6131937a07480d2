//! The audit trail: appends from many tasks form one intact chain on both backends, and
//! `voxgate audit verify` finds the first edited, reordered or deleted record.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::Command;

use common::{Backend, TestDb};
use voxgate::audit::checkpoint::Checkpoints;
use voxgate::audit::{Actor, AuditLog, ChainKey, Entry, Outcome};

/// The log as `voxgate serve` would open it in this directory (its local key file and the
/// checkpoint file beside it).
async fn audit_log(db: &TestDb, store: std::sync::Arc<dyn voxgate::store::Store>) -> AuditLog {
    let sealer =
        voxgate::cloud::seal::Sealer::local_key_file(&db.dir.path().join("voxgate.key")).unwrap();
    let key = ChainKey::load(store.as_ref(), &sealer).await.unwrap();
    let checkpoints =
        Checkpoints::open(&db.dir.path().join("voxgate.audit-checkpoints"), &key).unwrap();
    AuditLog::new(store, key).with_checkpoints(std::sync::Arc::new(checkpoints))
}

fn voxgate(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(db.dir.path())
        .env("VOXGATE_DATABASE_URL", &db.url)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn entry(n: usize, outcome: Outcome) -> Entry {
    Entry {
        at: 1_800_000_000 + n as i64,
        tenant_id: Some(
            if n.is_multiple_of(2) {
                "t_even"
            } else {
                "t_odd"
            }
            .into(),
        ),
        user_id: Some("u_1".into()),
        challenge_id: Some(format!("c_{n}")),
        actor: Actor::AlexaSession("amzn1.echo-api.session.test".into()),
        summary: format!("Stop web-{n} in prod, Ireland"),
        digest: format!("{n:064x}"),
        outcome,
        detail: String::new(),
        aws_request_id: (outcome == Outcome::Executed).then(|| format!("req-{n}")),
    }
}

on_both_backends!(concurrent_appends_form_one_intact_chain);
async fn concurrent_appends_form_one_intact_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let log = audit_log(&db, voxgate::store::connect(&db.url).await.unwrap()).await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(&entry(n, Outcome::Held)).await.unwrap() })
        })
        .collect();
    let mut seqs: Vec<i64> = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().seq);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());

    let (code, out, err) = voxgate(&db, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("The audit log is intact: 20 records."),
        "{out}"
    );
}

/// A counter from the process's metrics (0 before anything counted it).
/// What every record in the log says (its summary), oldest first.
async fn summaries(store: &dyn voxgate::store::Store) -> Vec<String> {
    store
        .audit_records(None, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.summary)
        .collect()
}

fn counter(name: &str) -> u64 {
    voxgate::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// SQLite commits the write transactions that queued meanwhile together (one wait for
/// the disk for several), and a transaction given up among them is undone alone: the
/// others' records form one intact chain without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_at_once_share_sqlite_commits_and_one_given_up_undoes_only_itself() {
    voxgate::metrics::handle();
    let db = TestDb::new(Backend::Sqlite).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store.clone()).await;
    let (commits, writes) = (
        counter("voxgate_sqlite_commits_total"),
        counter("voxgate_sqlite_write_transactions_total"),
    );
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let (log, store) = (log.clone(), store.clone());
            tokio::spawn(async move {
                if n % 8 == 3 {
                    // Written, then given up: rolled back, nothing of it stays.
                    let mut tx = store.begin().await.unwrap();
                    tx.append_audit(&entry(n, Outcome::Held).draft(), log.key())
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    drop(tx);
                    None
                } else {
                    Some(log.append(&entry(n, Outcome::Held)).await.unwrap().seq)
                }
            })
        })
        .collect();
    let mut seqs: Vec<i64> = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=56).collect::<Vec<_>>());
    let (commits, writes) = (
        counter("voxgate_sqlite_commits_total") - commits,
        counter("voxgate_sqlite_write_transactions_total") - writes,
    );
    assert!(writes >= 56, "{writes} write transactions counted");
    assert!(
        commits < writes,
        "{writes} write transactions took {commits} commits"
    );

    let (code, out, err) = voxgate(&db, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("The audit log is intact: 56 records."),
        "{out}"
    );
    // What each record says is its own: none carries the given-up transactions' summary.
    let mut summaries = summaries(store.as_ref()).await;
    summaries.sort();
    let mut kept: Vec<String> = (0..64)
        .filter(|n| n % 8 != 3)
        .map(|n| entry(n, Outcome::Held).summary)
        .collect();
    kept.sort();
    assert_eq!(summaries, kept);
}

/// Callers that go away while their transaction commits or is rolled back (a request
/// timed out, a client that hung up) change no one else's outcome: every caller that is
/// told its write is on disk finds it there, every caller told it failed finds nothing of
/// it, and the chain stays intact. (Before, a rollback whose caller went away while it
/// committed the batch of others left them told "failed" with their records written.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_go_away_mid_commit_do_not_change_what_others_are_told() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store.clone()).await;
    let mut told: Vec<(usize, bool)> = Vec::new();
    for round in 0..30 {
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let n = round * 100 + i;
                let (log, store) = (log.clone(), store.clone());
                tokio::spawn(async move {
                    let mut tx = store.begin().await.unwrap();
                    tx.append_audit(&entry(n, Outcome::Held).draft(), log.key())
                        .await
                        .unwrap();
                    // Some go away after a few hundred microseconds, at any point.
                    let patience = std::time::Duration::from_micros((i as u64 * 97) % 2500);
                    if i % 3 == 0 {
                        let _ = tokio::time::timeout(patience, tx.rollback()).await;
                        None
                    } else if i % 3 == 1 {
                        match tokio::time::timeout(patience, tx.commit()).await {
                            Ok(outcome) => Some((n, outcome.is_ok())),
                            Err(_) => None,
                        }
                    } else {
                        Some((n, tx.commit().await.is_ok()))
                    }
                })
            })
            .collect();
        for task in tasks {
            told.extend(task.await.unwrap());
        }
    }
    // One more, so that whatever is still open is committed with it.
    log.append(&entry(99_999, Outcome::Held)).await.unwrap();
    let present: std::collections::HashSet<String> =
        summaries(store.as_ref()).await.into_iter().collect();
    assert!(
        told.iter().any(|(_, ok)| *ok),
        "no commit was told it succeeded"
    );
    for (n, ok) in &told {
        assert_eq!(
            present.contains(&entry(*n, Outcome::Held).summary),
            *ok,
            "transaction {n} was told {} but its record is {}",
            if *ok { "committed" } else { "failed" },
            if *ok { "missing" } else { "there" }
        );
    }
    let (code, out, err) = voxgate(&db, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Replicas or tasks that make one of voxgate's own secrets at once agree on the one that
/// was stored first: one that finds it already there reads it back, also when the first
/// one's write is still in the commit it shares with others. (Before, the loser could read
/// before that commit and fail with "not found".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_made_at_once_agree_on_the_first_one_stored() {
    use voxgate::store::model::Sealed;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    for round in 0..20 {
        let name = format!("race-{round}");
        let tasks: Vec<_> = (0..24u8)
            .map(|n| {
                let (store, name) = (store.clone(), name.clone());
                tokio::spawn(async move {
                    store
                        .service_secret_once(&name, &Sealed::from_bytes(vec![n; 8]))
                        .await
                })
            })
            .collect();
        let mut kept = Vec::new();
        for task in tasks {
            let sealed = task
                .await
                .unwrap()
                .unwrap_or_else(|error| panic!("making secret {name} at once failed: {error}"));
            kept.push(sealed.as_bytes().to_vec());
        }
        kept.dedup();
        assert_eq!(kept.len(), 1, "{name}: they disagree: {kept:?}");
    }
}

on_both_backends!(verify_finds_the_first_tampered_record);
async fn verify_finds_the_first_tampered_record(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store).await;
    for n in 0..6 {
        log.append(&entry(
            n,
            if n == 5 {
                Outcome::Executed
            } else {
                Outcome::Held
            },
        ))
        .await
        .unwrap();
    }
    let (code, _, _) = voxgate(&db, &["audit", "verify"]);
    assert_eq!(code, 0);

    // Someone with database access rewrites record 3's outcome.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out, err) = voxgate(&db, &["audit", "verify", "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("audit record 3 was altered"), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["first_broken"], 3);

    // Rewriting the record and every hash after it, without the chain key, is found too.
    let records = log_records(&db).await;
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let mut prev = records[1].hash.clone();
    for mut r in records.into_iter().skip(2) {
        if r.seq == 3 {
            r.outcome = "denied".into();
        }
        r.prev_hash = prev.clone();
        let canonical = serde_json::json!([
            r.seq,
            r.at,
            r.tenant_id,
            r.user_id,
            r.summary,
            r.digest,
            r.outcome,
            r.detail,
            r.aws_request_id,
            r.prev_hash
        ]);
        let forged = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            format!("voxgate-audit-v1\n{canonical}").as_bytes(),
        ));
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&r.prev_hash)
            .bind(&forged)
            .bind(r.seq)
            .execute(&pool)
            .await
            .unwrap();
        prev = forged;
    }
    let (code, _, err) = voxgate(&db, &["audit", "verify"]);
    assert_ne!(code, 0);
    assert!(err.contains("audit record 3 was altered"), "{err}");
    pool.close().await;
}

async fn log_records(db: &TestDb) -> Vec<voxgate::audit::Record> {
    voxgate::store::connect(&db.url)
        .await
        .unwrap()
        .audit_records(None, 0, 100)
        .await
        .unwrap()
}

on_both_backends!(putting_back_and_deleting);
async fn putting_back_and_deleting(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store).await;
    for n in 0..6 {
        log.append(&entry(n, Outcome::Held)).await.unwrap();
    }
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert_ne!(voxgate(&db, &["audit", "verify"]).0, 0);
    // Putting the outcome back repairs it; deleting a record breaks it again.
    sqlx::query("UPDATE audit_log SET outcome = 'held' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(voxgate(&db, &["audit", "verify"]).0, 0);
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (code, _, err) = voxgate(&db, &["audit", "verify"]);
    assert_ne!(code, 0);
    assert!(err.contains("audit record 2 is missing"), "{err}");
    pool.close().await;
}

#[tokio::test]
async fn tail_and_export_show_the_records() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let tenant = store
        .add_tenant(&voxgate::store::TenantName::parse("acme").unwrap(), 0)
        .await
        .unwrap();
    let log = audit_log(&db, store).await;
    for n in 0..4 {
        let mut e = entry(
            n,
            if n == 3 {
                Outcome::Executed
            } else {
                Outcome::Held
            },
        );
        e.tenant_id = Some(if n < 2 {
            tenant.id.as_str().to_owned()
        } else {
            "t_other".into()
        });
        log.append(&e).await.unwrap();
    }
    let (code, out, _) = voxgate(&db, &["audit", "tail", "-n", "2"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two records: {out}");
    assert!(
        lines[0].starts_with("SEQ") && lines[0].contains("OUTCOME"),
        "{out}"
    );
    assert!(
        lines[1].contains("web-2") && lines[2].contains("executed") && lines[2].contains("req-3"),
        "{out}"
    );

    let (_, out, _) = voxgate(&db, &["audit", "tail", "--tenant", "acme", "--json"]);
    let records: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2);

    let (code, out, _) = voxgate(&db, &["audit", "export", "--format", "jsonl"]);
    assert_eq!(code, 0);
    let exported: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 4);
    assert_eq!(exported[0]["seq"], 1);
    assert_eq!(exported[3]["aws_request_id"], "req-3");
    assert_eq!(exported[1]["prev_hash"], exported[0]["hash"]);
}

// ---- Hardening (issue 8) ----

/// Settings of `voxgate serve` on this database, in its directory.
fn serve_settings(db: &TestDb) -> voxgate::config::Settings {
    let mut args = common::serve_args(
        std::path::Path::new("/nonexistent-roots.pem"),
        db.dir.path(),
        db,
        &db.dir.path().join("voxgate.key"),
    );
    args.insecure_skip_verification = true;
    args.into_settings().unwrap()
}

async fn build_app(db: &TestDb) -> Result<voxgate::app::App, String> {
    voxgate::app::App::build(
        serve_settings(db),
        voxgate::app::Runtime {
            clock: std::sync::Arc::new(voxgate::clock::SystemClock),
            aws: common::aws::sdk_config(common::NO_AWS),
        },
    )
    .await
    .map_err(|e| format!("{e:#}"))
}

on_both_backends!(a_cut_off_tail_is_noticed);
async fn a_cut_off_tail_is_noticed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store).await;
    for n in 0..6 {
        log.append(&entry(
            n,
            if n == 5 {
                Outcome::Executed
            } else {
                Outcome::Held
            },
        ))
        .await
        .unwrap();
    }
    let (code, out, err) = voxgate(&db, &["audit", "verify", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["newest_checkpoint"], 6);
    let head = report["head"].as_str().unwrap().to_owned();
    assert!(head.starts_with("6:"), "{head}");

    // Someone with database access removes the newest records (the one saying an operation
    // ran among them) and fixes up the head, so the next append chains onto what is left.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let four: (String,) = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = 4")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq > 4")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_head SET seq = 4, hash = $1")
        .bind(&four.0)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The chain itself is intact, but the checkpoint outside the database vouches for more.
    let (code, _, err) = voxgate(&db, &["audit", "verify"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the audit log ends at record 4, but the checkpoint written"),
        "{err}"
    );
    assert!(
        err.contains("vouches for record 6: the newest records were removed"),
        "{err}"
    );
    // A head noted elsewhere says the same, even without the checkpoint file.
    std::fs::remove_file(db.dir.path().join("voxgate.audit-checkpoints")).unwrap();
    let (code, _, err) = voxgate(&db, &["audit", "verify", "--expect-head", &head]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the audit log ends at record 4, but --expect-head vouches for record 6"),
        "{err}"
    );
    let (code, _, err) = voxgate(&db, &["audit", "verify", "--expect-head", "6:nothex"]);
    assert_ne!(code, 0);
    assert!(err.contains("is not a record hash"), "{err}");
}

#[tokio::test]
async fn serve_refuses_a_database_behind_its_checkpoints() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store).await;
    for n in 0..3 {
        log.append(&entry(n, Outcome::Held)).await.unwrap();
    }
    assert!(build_app(&db).await.is_ok(), "an intact log is served");
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let Err(error) = build_app(&db).await else {
        panic!("served a database missing its newest record")
    };
    assert!(
        error.contains("the audit log ends at record 2, but the checkpoint written"),
        "{error}"
    );
    assert!(
        error.contains("voxgate will not serve from this database"),
        "{error}"
    );
}

on_both_backends!(a_missing_chain_key_is_an_error_never_replaced);
async fn a_missing_chain_key_is_an_error_never_replaced(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = voxgate::store::connect(&db.url).await.unwrap();
    let log = audit_log(&db, store).await;
    log.append(&entry(1, Outcome::Held)).await.unwrap();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("DELETE FROM service_secrets WHERE name = 'audit-chain-key'")
        .execute(&pool)
        .await
        .unwrap();
    let Err(error) = build_app(&db).await else {
        panic!("serve made a new chain key over an existing log")
    };
    assert!(
        error.contains("the audit log has records but its chain key is missing"),
        "{error}"
    );
    let keys: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM service_secrets WHERE name = 'audit-chain-key'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(keys.0, 0, "no new key was made");
    pool.close().await;
    let (code, _, err) = voxgate(&db, &["audit", "verify"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the audit log has records but its chain key is missing"),
        "{err}"
    );
    let said: Vec<&str> = err.lines().filter(|l| l.starts_with("voxgate: ")).collect();
    assert_eq!(said.len(), 1, "one sentence: {err}");
    assert!(
        !said[0].contains("; nothing") && said[0].ends_with(')'),
        "{}",
        said[0]
    );
}
