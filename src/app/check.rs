//! `voxgate check-config`: the settings `serve` would run with, and whether what they point
//! at answers (the store, the KMS key, the trust roots, voxgate's own AWS identity, the
//! listen address, the audit log), one line per check and one sentence per problem.
//! Nothing is written: a missing SQLite file or key file is reported, not made.

use std::time::Duration;

use crate::config::{Sealing, ServeArgs, Settings, Verification};

/// How long each reachability check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's result: `Ok` what was found, `Err` what is wrong.
struct Line {
    name: &'static str,
    result: Result<String, String>,
    /// A finding worth a look that does not stop `serve` (printed as `warn`).
    warning: bool,
}

impl Line {
    fn ok(name: &'static str, what: String) -> Self {
        Self {
            name,
            result: Ok(what),
            warning: false,
        }
    }

    fn fail(name: &'static str, why: String) -> Self {
        Self {
            name,
            result: Err(why),
            warning: false,
        }
    }

    fn warn(name: &'static str, what: String) -> Self {
        Self {
            name,
            result: Ok(what),
            warning: true,
        }
    }

    fn of(name: &'static str, result: Result<String, String>) -> Self {
        Self {
            name,
            result,
            warning: false,
        }
    }
}

/// Runs every check, prints one line each, and fails if any did.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    match args.into_settings() {
        Ok(settings) => checks(&settings, &mut lines).await,
        Err(error) => lines.push(Line::fail("settings", error.to_string())),
    }
    let mut failed = 0;
    for line in &lines {
        match &line.result {
            Ok(what) if line.warning => println!("warn  {:<12} {what}", line.name),
            Ok(what) => println!("ok    {:<12} {what}", line.name),
            Err(why) => {
                failed += 1;
                println!("FAIL  {:<12} {why}", line.name);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} checks failed; voxgate serve would not work as configured",
            lines.len()
        );
    }
    println!("Everything voxgate serve needs is in place.");
    Ok(())
}

async fn within<T>(what: &str, work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(CHECK_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{what} did not answer within {} s",
                CHECK_TIMEOUT.as_secs()
            ))
        })
}

/// Whether `addr` is free to listen on; a taken one is a warning (on the host being
/// checked, `serve` itself is usually the one holding it).
fn listen_line(name: &'static str, addr: std::net::SocketAddr, flag: &str) -> Line {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Line::ok(name, format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Line::warn(
            name,
            format!("{addr} is in use (is voxgate serve running? if not, choose another {flag})"),
        ),
        Err(e) => Line::fail(
            name,
            format!("cannot listen on {addr}: {e}; choose another address with {flag}"),
        ),
    }
}

async fn checks(settings: &Settings, lines: &mut Vec<Line>) {
    lines.push(Line::ok(
        "settings",
        format!(
            "listen on {}, {} skill id(s), requests {}",
            settings.listen,
            settings.skill_ids.len(),
            match settings.verification {
                Verification::Enforce { .. } => "verified",
                Verification::InsecureSkip => "NOT verified (--insecure-skip-verification)",
            }
        ),
    ));
    lines.push(listen_line("listen", settings.listen, "--listen"));
    if let Some(metrics) = settings.metrics_listen {
        lines.push(if metrics == settings.listen {
            Line::fail(
                "metrics",
                "--metrics-listen is the same address as --listen: leave it out to serve \
                 /metrics beside /alexa, or give it an address of its own"
                    .into(),
            )
        } else {
            listen_line("metrics", metrics, "--metrics-listen")
        });
    }
    if let Verification::Enforce { roots, .. } = &settings.verification {
        lines.push(Line::ok(
            "trust roots",
            format!(
                "{} root certificate(s) for Alexa's signing chain",
                roots.len()
            ),
        ));
    }

    let aws = crate::cloud::load_sdk_config().await;
    let sts = aws_sdk_sts::config::Builder::from(&aws)
        .timeout_config(crate::cloud::sdk::timeouts())
        .retry_config(crate::cloud::sdk::read_retries())
        .build();
    let identity = within("STS", async {
        let out = aws_sdk_sts::Client::from_conf(sts)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                format!(
                    "voxgate's own AWS identity could not be read ({}): set AWS credentials \
                     (environment, profile or instance role) so voxgate can assume customers' \
                     roles",
                    describe(&e)
                )
            })?;
        Ok(format!(
            "voxgate runs as {} (account {})",
            out.arn().unwrap_or("?"),
            out.account().unwrap_or("?")
        ))
    })
    .await;
    lines.push(Line::of("aws identity", identity));

    // The store first (only looked at: no migrations, nothing made), so the key checks can
    // say whether there are secrets a missing key would lose.
    let checkpoints = &settings.audit_checkpoint_file;
    let store = match crate::store::sqlite_file(&settings.database_url) {
        Some(file) if !file.exists() => {
            lines.push(if checkpoints.exists() {
                Line::fail(
                    "store",
                    format!(
                        "the SQLite database {} is missing, but the audit checkpoint file {} \
                         records an audit log: was the database moved or lost? (serve would \
                         start an empty one and refuse it against the checkpoints)",
                        file.display(),
                        checkpoints.display()
                    ),
                )
            } else {
                Line::ok(
                    "store",
                    format!(
                        "the SQLite database {} will be made at first start",
                        file.display()
                    ),
                )
            });
            None
        }
        _ => {
            let looked = within("the database", async {
                crate::store::connect_to_look(&settings.database_url)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match looked {
                Ok((_, pending)) if pending > 0 => {
                    lines.push(Line::warn(
                        "store",
                        format!(
                            "the {} answers; {pending} migration(s) are pending, which serve \
                             applies at start (the stored data was not checked)",
                            crate::store::describe(&settings.database_url)
                        ),
                    ));
                    None
                }
                Ok((store, _)) => {
                    let tenants = store.tenants().await.map(|t| t.len());
                    lines.push(Line::of(
                        "store",
                        tenants
                            .map(|n| {
                                format!(
                                    "the {} answers ({n} tenant(s))",
                                    crate::store::describe(&settings.database_url)
                                )
                            })
                            .map_err(|e| e.to_string()),
                    ));
                    Some(store)
                }
                Err(error) => {
                    lines.push(Line::fail("store", error));
                    None
                }
            }
        }
    };
    // Whether the store holds anything sealed (voxgate's own keys, accounts, TOTP keys):
    // a key that cannot open them is a failure, not a fresh start.
    let sealed_inside = match &store {
        Some(store) => {
            store
                .service_secret(crate::audit::CHAIN_KEY_NAME)
                .await
                .ok()
                .flatten()
                .is_some()
                || store.accounts(None).await.is_ok_and(|a| !a.is_empty())
        }
        None => false,
    };

    let sealer = match &settings.sealing {
        Sealing::LocalKeyFile(path) if !path.exists() => {
            lines.push(if sealed_inside {
                Line::fail(
                    "sealing",
                    format!(
                        "the local key file {} is missing, but the database holds secrets \
                         sealed with it: serve would make a new key that opens none of them; \
                         restore the key file (or set --local-key-file to where it is)",
                        path.display()
                    ),
                )
            } else {
                Line::ok(
                    "sealing",
                    format!(
                        "the local key file {} will be made at first start (development only)",
                        path.display()
                    ),
                )
            });
            None
        }
        sealing => match crate::cloud::sealer(sealing, &aws) {
            Ok(sealer) => {
                let ctx = crate::cloud::seal::SealContext::new(
                    "voxgate",
                    crate::cloud::seal::Purpose::ServiceKey,
                    "check-config",
                );
                let round_trip = within("the KMS key", async {
                    let sealed = sealer
                        .seal(b"check", &ctx)
                        .await
                        .map_err(|e| e.to_string())?;
                    let opened = sealer
                        .open(&sealed, &ctx)
                        .await
                        .map_err(|e| e.to_string())?;
                    if opened.as_slice() == b"check" {
                        Ok(())
                    } else {
                        Err("a sealed value did not open to itself".to_owned())
                    }
                })
                .await;
                lines.push(Line::of(
                    "sealing",
                    round_trip.map(|()| match sealing {
                        Sealing::Kms(key) => format!("KMS key {key} seals and opens"),
                        Sealing::LocalKeyFile(path) => format!(
                            "local key file {} seals and opens (development only)",
                            path.display()
                        ),
                    }),
                ));
                Some(sealer)
            }
            Err(error) => {
                lines.push(Line::fail("sealing", error.to_string()));
                None
            }
        },
    };

    if let (Some(store), Some(sealer)) = (store, sealer) {
        let audit = async {
            let key = crate::audit::ChainKey::existing(store.as_ref(), &sealer)
                .await
                .map_err(|e| e.to_string())?;
            let Some(key) = key else {
                return if store
                    .audit_last()
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    Ok("empty; its key will be made at first start".to_owned())
                } else {
                    Err(crate::audit::ChainKeyError::Missing.to_string())
                };
            };
            crate::audit::checkpoint::check_store(store.as_ref(), checkpoints, &key)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "chain key opens; the database holds every checkpointed record ({})",
                checkpoints.display()
            ))
        };
        lines.push(Line::of("audit log", within("the audit log", audit).await));
    }
}

/// What went wrong with an AWS call, in a few words (never a credential).
fn describe<E: aws_sdk_sts::error::ProvideErrorMetadata, R>(
    error: &aws_sdk_sts::error::SdkError<E, R>,
) -> String {
    use aws_sdk_sts::error::SdkError;
    match error {
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .unwrap_or("an error without a code")
            .to_owned(),
        SdkError::TimeoutError(_) => "no answer in time".into(),
        SdkError::DispatchFailure(_) => "STS could not be reached".into(),
        SdkError::ConstructionFailure(_) => "no credentials or region".into(),
        _ => "an unreadable answer".into(),
    }
}
