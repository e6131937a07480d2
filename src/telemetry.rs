//! Logging set-up. Log lines carry reasons and ids, never secrets: secret values are held in
//! types whose `Debug` redacts them, and handlers skip their arguments when instrumented.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::config::{LogArgs, LogFormat};

/// Targets of the AWS SDK whose debug and trace output names credentials (the runtime
/// prints the identity it signs with, including the access key id, and the signer prints
/// canonical requests with the session token).
const SDK_TARGETS_CAPPED_AT_INFO: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "aws_credential_types",
    "aws_sdk_sts",
    "aws_sdk_ec2",
    "aws_sdk_kms",
    "aws_sdk_ssm",
    "aws_sdk_cloudwatch",
    "aws_sdk_cloudfront",
    "aws_sdk_budgets",
    "aws_sdk_costexplorer",
    "aws_sdk_iam",
];

/// Whether a log event may be written: the SDK's credential-bearing targets (and all of
/// their submodules) never above `info`. Applied on top of the operator's filter, so no
/// directive (`aws_sigv4::http_request=trace` included) can lift it.
fn sdk_capped(target: &str, level: &Level) -> bool {
    let sdk = SDK_TARGETS_CAPPED_AT_INFO.iter().any(|t| {
        target == *t
            || target
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with("::"))
    });
    !sdk || *level <= Level::INFO
}

/// The operator's filter.
pub fn filter(spec: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(spec)
        .map_err(|e| anyhow::anyhow!("--log (VOXGATE_LOG) '{spec}' is not a log filter: {e}"))
}

/// Whether an event from `target` at `level` is the AWS SDK's own chatter (region and
/// credential lookups warn when IMDS is unreachable), which a short operator command keeps
/// out of its output unless it is an error.
fn sdk_chatter(target: &str, level: &Level) -> bool {
    target.starts_with("aws_config") && *level > Level::ERROR
}

/// Installs the global log subscriber (stderr). Call once, from `main`. `operator`: a
/// short operator command, whose output is for a person (no AWS SDK chatter).
pub fn init(args: &LogArgs, operator: bool) -> anyhow::Result<()> {
    let layer = match args.log_format {
        // Colours only for a person at a terminal, never in a file or a pipe.
        LogFormat::Text => fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    // Both filters are global (every layer sees only what both let through). Combined as
    // one per-layer filter (`EnvFilter::and(filter_fn)`), they lost events whose callsites
    // were first reached while a PostgreSQL connection was being set up.
    tracing_subscriber::registry()
        .with(filter(&args.filter)?)
        .with(filter_fn(move |meta| {
            sdk_capped(meta.target(), meta.level())
                && !(operator && sdk_chatter(meta.target(), meta.level()))
        }))
        .with(layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("could not set up logging: {e}"))
}

/// As [`init`], writing to `path` (created or truncated) instead of standard error.
pub fn init_file(args: &LogArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot write the log {}: {e}", path.display()))?;
    let writer = std::sync::Mutex::new(file);
    let layer = match args.log_format {
        LogFormat::Text => fmt::layer().with_ansi(false).with_writer(writer).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(writer).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter(&args.filter)?)
        .with(filter_fn(|meta| sdk_capped(meta.target(), meta.level())))
        .with(layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("could not set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_targets_stay_at_info_whatever_the_filter() {
        assert!(!sdk_capped("aws_sigv4::http_request::sign", &Level::TRACE));
        assert!(!sdk_capped("aws_smithy_runtime", &Level::DEBUG));
        assert!(sdk_capped("aws_smithy_runtime", &Level::INFO));
        assert!(sdk_capped("aws_sigv4_other_crate", &Level::TRACE));
        assert!(sdk_capped("voxgate::app", &Level::TRACE));
    }
}
