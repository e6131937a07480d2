//! Makes unique, signed Help-intent requests for the load benchmark (`scripts/bench-load`):
//! one line per request, `SIGNATURE<TAB>BODY`, signed with a development CA's key
//! (`voxgate dev-ca init`), all timestamped now and each with its own request id.
//!
//! Usage: `signed_requests DEV_CA_DIR SKILL_ID COUNT OUT_FILE [AHEAD_SECONDS]`
//!
//! AHEAD_SECONDS (default 0) dates the requests that far in the future (voxgate accepts
//! 150 s either way), so that making many of them does not age the first ones out.
#![allow(missing_docs)]

use std::io::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: signed_requests DEV_CA_DIR SKILL_ID COUNT OUT_FILE";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let skill = args.next().ok_or(usage)?;
    let count: usize = args.next().ok_or(usage)?.parse()?;
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let ahead: i64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let signer = std::sync::Arc::new(voxgate::devca::Signer::load(&dir)?);
    let timestamp = (time::OffsetDateTime::now_utc() + time::Duration::seconds(ahead))
        .format(&time::format_description::well_known::Rfc3339)?
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches('Z')
        .to_owned()
        + "Z";
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let run = format!("{}", std::process::id());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let signer = std::sync::Arc::clone(&signer);
            let (skill, timestamp, run) = (skill.clone(), timestamp.clone(), run.clone());
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                for i in (t..count).step_by(threads) {
                    let body = serde_json::json!({
                        "version": "1.0",
                        "session": {
                            "new": true,
                            "sessionId": format!("amzn1.echo-api.session.bench-{run}-{i}"),
                            "application": {"applicationId": skill},
                            "user": {"userId": "amzn1.ask.account.BENCH"}
                        },
                        "context": {"System": {
                            "application": {"applicationId": skill},
                            "user": {"userId": "amzn1.ask.account.BENCH"}
                        }},
                        "request": {
                            "type": "IntentRequest",
                            "requestId": format!("amzn1.echo-api.request.bench-{run}-{i}"),
                            "timestamp": timestamp,
                            "locale": "en-US",
                            "intent": {"name": "AMAZON.HelpIntent", "confirmationStatus": "NONE"}
                        }
                    })
                    .to_string();
                    let signature = signer.sign(body.as_bytes()).expect("sign");
                    lines.push(format!("{signature}\t{body}\n"));
                }
                lines
            })
        })
        .collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    for handle in handles {
        for line in handle.join().map_err(|_| "a signing thread failed")? {
            file.write_all(line.as_bytes())?;
        }
    }
    file.flush()?;
    Ok(())
}
