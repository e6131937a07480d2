//! Logging set-up. Log lines carry reasons and ids, never secrets: secret values are held in
//! types whose `Debug` redacts them, and handlers skip their arguments when instrumented.

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Installs the global log subscriber (stderr). Call once, from `main`.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.filter).map_err(|e| {
        anyhow::anyhow!(
            "--log (VOXGATE_LOG) '{}' is not a log filter: {e}",
            args.filter
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not set up logging: {e}"))
}
