//! `voxgate audit …`: verifying the hash chain against its signed checkpoints, reading
//! the newest records and exporting them all.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::json;

use super::table::Table;
use super::{Output, find_tenant, open, print_json, sealer, when};
use crate::config::{DatabaseArgs, SealingArgs};

/// `voxgate audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and compare it with the newest signed checkpoint (and a
    /// head noted elsewhere); report the first broken record or a cut-off tail (non-zero
    /// exit). Uses the same sealing settings as `serve`, to open the chain key.
    Verify {
        /// A head noted earlier (`SEQ:HASH`, as printed by a previous verify): the log must
        /// still hold that record.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        /// Sealing of secrets.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Show the newest records.
    Tail {
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Write every record, oldest first, to standard output.
    Export {
        /// Output format (one JSON object per line).
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// JSON Lines.
    Jsonl,
}

const AUDIT_PAGE: i64 = 1_000;

pub(super) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            expect_head,
            sealing,
            db,
            out,
        } => verify_audit(expect_head.as_deref(), &sealing, &db, out).await,
        AuditCommand::Tail {
            tenant,
            lines,
            db,
            out,
        } => {
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let records = store
                .audit_tail(tenant_id.as_ref(), lines.clamp(1, 10_000))
                .await?;
            if out.json {
                return print_json(&json!(records));
            }
            if records.is_empty() {
                println!("The audit log is empty.");
                return Ok(());
            }
            let mut table = Table::new(&["SEQ", "AT", "OUTCOME", "ACTOR", "SUMMARY"]);
            for r in records {
                let summary = match &r.aws_request_id {
                    Some(id) => format!("{}  [aws request {id}]", r.summary),
                    None => r.summary.clone(),
                };
                table.row(vec![
                    r.seq.to_string(),
                    when(r.at),
                    r.outcome.clone(),
                    r.actor.clone().unwrap_or_default(),
                    summary,
                ]);
            }
            print!("{table}");
            Ok(())
        }
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            tenant,
            db,
        } => {
            use std::io::Write as _;
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let stdout = std::io::stdout();
            let mut stdout = stdout.lock();
            let mut after = 0;
            loop {
                let page = store
                    .audit_records(tenant_id.as_ref(), after, AUDIT_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for record in &page {
                    writeln!(stdout, "{}", serde_json::to_string(record)?)?;
                }
            }
            Ok(())
        }
    }
}

/// `SEQ:HASH` as printed by `audit verify`.
fn parse_head(raw: &str) -> anyhow::Result<(i64, String)> {
    let (seq, hash) = raw.trim().split_once(':').with_context(|| {
        format!("'{raw}' is not SEQ:HASH: give --expect-head as printed by `voxgate audit verify`, e.g. 42:3fa9…")
    })?;
    let seq: i64 = seq
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .with_context(|| format!("'{seq}' is not a record number in --expect-head"))?;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("'{hash}' is not a record hash (64 hex digits) in --expect-head");
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

async fn verify_audit(
    expect_head: Option<&str>,
    sealing: &SealingArgs,
    db: &DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let expected = expect_head.map(parse_head).transpose()?;
    let store = open(db).await?;
    let sealer = sealer(sealing).await?;
    let fail = |reason: String, first_broken: Option<i64>| -> anyhow::Result<()> {
        if out.json {
            print_json(&json!({"intact": false, "first_broken": first_broken, "reason": reason}))?;
        }
        bail!("the audit log is NOT intact: {reason}")
    };
    // Reading never makes a key; records without one cannot be vouched for.
    let Some(key) = crate::audit::ChainKey::existing(store.as_ref(), &sealer).await? else {
        if store.audit_last().await?.is_none() && expected.is_none() {
            if out.json {
                return print_json(&json!({"intact": true, "records": 0}));
            }
            println!("The audit log is empty.");
            return Ok(());
        }
        return fail(crate::audit::ChainKeyError::Missing.to_string(), None);
    };
    let mut check = crate::audit::ChainCheck::new(key.clone());
    let mut after = 0;
    loop {
        let page = store.audit_records(None, after, AUDIT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            if let Err(broken) = check.feed(record) {
                return fail(broken.to_string(), Some(broken.seq()));
            }
        }
    }
    let path = sealing.checkpoint_file();
    let reading = match crate::audit::checkpoint::check_store(store.as_ref(), &path, &key).await {
        Ok(reading) => reading,
        Err(error) => return fail(error.to_string(), None),
    };
    if let Some((seq, hash)) = &expected {
        let at_seq = store.audit_record(*seq).await?;
        if let Err(behind) = crate::audit::checkpoint::compare(
            *seq,
            hash,
            check.checked(),
            at_seq.as_ref().map(|r| r.hash.as_str()),
            "--expect-head",
        ) {
            return fail(behind.to_string(), None);
        }
    }
    let newest = reading.newest.as_ref().map(|c| c.seq);
    if out.json {
        return print_json(&json!({
            "intact": true,
            "records": check.checked(),
            "head": format!("{}:{}", check.checked(), check.head()),
            "checkpoint_file": path.display().to_string(),
            "checkpoints": reading.genuine,
            "newest_checkpoint": newest,
            "not_genuine_checkpoint_lines": reading.not_genuine,
        }));
    }
    println!("The audit log is intact: {} records.", check.checked());
    match newest {
        Some(seq) => println!(
            "It holds every record up to the newest checkpoint ({seq}) in {}.",
            path.display()
        ),
        None => println!(
            "No checkpoints in {} to compare with (keep that file, or note the head below).",
            path.display()
        ),
    }
    if reading.not_genuine > 0 {
        println!(
            "Warning: {} line(s) of {} are not signed with this log's key and were ignored.",
            reading.not_genuine,
            path.display()
        );
    }
    println!(
        "Head: {}:{} (note it elsewhere; `--expect-head` checks against it later)",
        check.checked(),
        check.head()
    );
    Ok(())
}
