//! The `voxgate` command line: `serve` runs the skill service; operator commands (tenants,
//! accounts, users, pairing, audit) join as their features land.

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{LogArgs, ServeArgs};

/// voxgate: run cloud operations on your AWS account by voice, with critical operations
/// held until you speak the one-time code from the companion app.
#[derive(Debug, Parser)]
#[command(name = "voxgate", version, about, long_about = None)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the skill web service (POST /alexa, GET /healthz).
    Serve(ServeArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.into_settings()?;
            let app = App::build(settings, Arc::new(SystemClock)).await?;
            app.serve(shutdown_signal()).await
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, for graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
