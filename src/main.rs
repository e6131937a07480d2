//! The `voxgate` binary: parse the command line, set up logging, hand over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use voxgate::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = voxgate::telemetry::init(&cli.log) {
        eprintln!("voxgate: {error:#}");
        return ExitCode::from(2);
    }
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voxgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
