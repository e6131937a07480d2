//! `voxgate check-config`: the settings `serve` would run with, and whether what they point
//! at answers (the store, the KMS key, the trust roots, voxgate's own AWS identity, the
//! listen address, the audit log), one line per check and one sentence per problem.
//! Nothing is written: a missing SQLite file or key file is reported, not made.

use std::time::Duration;

use crate::config::{Sealing, ServeArgs, Settings, Verification};

/// How long each reachability check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's result.
struct Line {
    name: &'static str,
    result: Result<String, String>,
}

/// Runs every check, prints one line each, and fails if any did.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    match args.into_settings() {
        Ok(settings) => checks(&settings, &mut lines).await,
        Err(error) => lines.push(Line {
            name: "settings",
            result: Err(error.to_string()),
        }),
    }
    let mut failed = 0;
    for line in &lines {
        match &line.result {
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

async fn checks(settings: &Settings, lines: &mut Vec<Line>) {
    lines.push(Line {
        name: "settings",
        result: Ok(format!(
            "listen on {}, {} skill id(s), requests {}",
            settings.listen,
            settings.skill_ids.len(),
            match settings.verification {
                Verification::Enforce { .. } => "verified",
                Verification::InsecureSkip => "NOT verified (--insecure-skip-verification)",
            }
        )),
    });
    lines.push(Line {
        name: "listen",
        result: match std::net::TcpListener::bind(settings.listen) {
            Ok(_) => Ok(format!("{} is free", settings.listen)),
            Err(e) => Err(format!(
                "cannot listen on {}: {e}; choose another address with --listen",
                settings.listen
            )),
        },
    });
    if let Verification::Enforce { roots, .. } = &settings.verification {
        lines.push(Line {
            name: "trust roots",
            result: Ok(format!(
                "{} root certificate(s) for Alexa's signing chain",
                roots.len()
            )),
        });
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
    lines.push(Line {
        name: "aws identity",
        result: identity,
    });

    let sealer = match &settings.sealing {
        Sealing::LocalKeyFile(path) if !path.exists() => {
            lines.push(Line {
                name: "sealing",
                result: Ok(format!(
                    "the local key file {} will be made at first start (development only)",
                    path.display()
                )),
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
                lines.push(Line {
                    name: "sealing",
                    result: round_trip.map(|()| match sealing {
                        Sealing::Kms(key) => format!("KMS key {key} seals and opens"),
                        Sealing::LocalKeyFile(path) => format!(
                            "local key file {} seals and opens (development only)",
                            path.display()
                        ),
                    }),
                });
                Some(sealer)
            }
            Err(error) => {
                lines.push(Line {
                    name: "sealing",
                    result: Err(error.to_string()),
                });
                None
            }
        },
    };

    let store = match crate::store::sqlite_file(&settings.database_url) {
        Some(file) if !file.exists() => {
            lines.push(Line {
                name: "store",
                result: Ok(format!(
                    "the SQLite database {} will be made at first start",
                    file.display()
                )),
            });
            None
        }
        _ => {
            let connected = within("the database", async {
                crate::store::connect(&settings.database_url)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match connected {
                Ok(store) => {
                    let tenants = store.tenants().await.map(|t| t.len());
                    lines.push(Line {
                        name: "store",
                        result: tenants
                            .map(|n| {
                                format!(
                                    "the {} answers ({n} tenant(s))",
                                    crate::store::describe(&settings.database_url)
                                )
                            })
                            .map_err(|e| e.to_string()),
                    });
                    Some(store)
                }
                Err(error) => {
                    lines.push(Line {
                        name: "store",
                        result: Err(error),
                    });
                    None
                }
            }
        }
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
            crate::audit::checkpoint::check_store(
                store.as_ref(),
                &settings.audit_checkpoint_file,
                &key,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(format!(
                "chain key opens; the database holds every checkpointed record ({})",
                settings.audit_checkpoint_file.display()
            ))
        };
        lines.push(Line {
            name: "audit log",
            result: within("the audit log", audit).await,
        });
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
