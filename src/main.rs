//! The `voxgate` binary: parse the command line, set up logging, hand over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use voxgate::cli::{self, Cli};

// Every request allocates and frees many small buffers (headers, JSON, spans) across the
// runtime's threads; mimalloc does that with less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo shares the terminal with the dialog: its log goes to a file.
    let logging = match &cli.command {
        cli::Command::Demo(demo) => demo
            .prepare()
            .and_then(|log| voxgate::telemetry::init_file(&cli.log, &log)),
        command => voxgate::telemetry::init(&cli.log, command.is_operator_command()),
    };
    if let Err(error) = logging {
        eprintln!("voxgate: {error:#}");
        return ExitCode::from(2);
    }
    let interactive = matches!(cli.command, cli::Command::Demo(_) | cli::Command::Dialog(_));
    let code = match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voxgate: {error:#}");
            ExitCode::FAILURE
        }
    };
    if interactive {
        // A terminal read may still be waiting for a line nobody will type (after Ctrl-C);
        // everything the command started is stopped, so leave without waiting for it.
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    code
}
