//! Logging set-up. Log lines carry reasons and ids, never secrets: secret values are held in
//! types whose `Debug` redacts them, and handlers skip their arguments when instrumented.

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Targets of the AWS SDK whose debug and trace output names credentials (the runtime
/// prints the identity it signs with, including the access key id, and the signer prints
/// canonical requests with the session token). They stay at `info` whatever the filter
/// says, so no log level can leak STS credentials.
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
];

/// The filter for `spec`, with the SDK's credential-bearing targets capped.
pub fn filter(spec: &str) -> anyhow::Result<EnvFilter> {
    let mut filter = EnvFilter::try_new(spec)
        .map_err(|e| anyhow::anyhow!("--log (VOXGATE_LOG) '{spec}' is not a log filter: {e}"))?;
    for target in SDK_TARGETS_CAPPED_AT_INFO {
        filter = filter.add_directive(format!("{target}=info").parse()?);
    }
    Ok(filter)
}

/// Installs the global log subscriber (stderr). Call once, from `main`.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&args.filter)?)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not set up logging: {e}"))
}
