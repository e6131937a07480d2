//! The `voxgate` command line: `serve` runs the skill service; `tenant`, `user`, `account`,
//! `pair`, `device` and `audit` are the operator's commands. Every command takes
//! `--database-url`, and those a script would read offer `--json`. Bad input is refused
//! before anything is written, and every change the operator makes is audited.

mod accounts;
mod audit;
mod devices;
mod people;
mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::app::{App, Runtime};
use crate::clock::{Clock as _, SystemClock};
use crate::config::{DatabaseArgs, LogArgs, SealingArgs, ServeArgs};
use crate::store::{Store, Tenant};

pub use accounts::{AccountCommand, LinkArgs};
pub use audit::{AuditCommand, ExportFormat};
pub use devices::DeviceCommand;
pub use people::{TenantCommand, UserCommand};

/// voxgate: run cloud operations on your AWS account by voice, with critical operations
/// held until you speak the one-time code from the companion app.
#[derive(Debug, Parser)]
#[command(name = "voxgate", version, about, long_about = None)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Say which database (and key) each command uses.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the skill web service (POST /alexa, GET /healthz, GET /readyz, GET /metrics).
    Serve(ServeArgs),
    /// Check serve's settings and what they point at (store, KMS key, trust roots, AWS
    /// identity), one sentence per problem; exits non-zero if anything is wrong.
    CheckConfig(ServeArgs),
    /// Manage tenants (a team or customer with its own users and AWS accounts).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Link, show, check, list and unlink customers' AWS accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Enrol, list and remove the people who may use the skill.
    #[command(subcommand)]
    User(UserCommand),
    /// Check, read and export the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a one-time code (10 minutes) that pairs a companion device with a user.
    Pair(devices::PairArgs),
    /// List or revoke paired companion devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// A local certificate authority that signs requests the way Alexa does, so the whole
    /// verification path runs without an Echo.
    #[command(subcommand)]
    DevCa(DevCaCommand),
    /// Talk to the skill by typing: each line becomes the request Alexa would send (from the
    /// interaction model), the answer is printed, the session carries over.
    Dialog(DialogArgs),
    /// A complete local world in one command: moto as AWS, voxgate with full request
    /// verification on SQLite, a paired companion, and the dialog.
    Demo(crate::demo::DemoArgs),
}

/// `voxgate dialog`
#[derive(Debug, Args)]
pub struct DialogArgs {
    /// The skill's /alexa URL.
    #[arg(
        long,
        env = "VOXGATE_DIALOG_ENDPOINT",
        default_value = "http://127.0.0.1:8080/alexa"
    )]
    pub endpoint: String,
    /// Sign every request with the development CA in DIR (`voxgate dev-ca init DIR`), so
    /// the whole verification path runs. Without it, only a service started with
    /// --insecure-skip-verification answers.
    #[arg(long, value_name = "DIR")]
    pub sign: Option<std::path::PathBuf>,
    /// The applicationId requests carry (the skill id the service was told).
    #[arg(long, env = "VOXGATE_SKILL_ID", value_name = "ID")]
    pub skill_id: String,
    /// The Alexa user id requests carry.
    #[arg(
        long,
        env = "VOXGATE_DIALOG_USER_ID",
        default_value = "amzn1.ask.account.VOXGATE-DIALOG"
    )]
    pub user_id: String,
    /// The locale of the requests and of the interaction model.
    #[arg(long, default_value = "en-US")]
    pub locale: String,
    /// The interaction model (default skill-package/interactionModels/custom/<locale>.json).
    #[arg(long, value_name = "FILE")]
    pub model: Option<std::path::PathBuf>,
    /// Run a conversation from FILE (`say: …` and `expect: REGEX` lines) and exit non-zero
    /// at the first answer that does not match.
    #[arg(long, value_name = "FILE")]
    pub script: Option<std::path::PathBuf>,
    /// Print each raw request and response.
    #[arg(long)]
    pub show_json: bool,
}

/// `voxgate dev-ca …`
#[derive(Debug, Subcommand)]
pub enum DevCaCommand {
    /// Make a root, an intermediate and a signing certificate for echo-api.amazon.com in
    /// DIR, with the chain filed for --alexa-cert-dir.
    Init {
        /// Where to put it (created if missing; refused if it already holds one).
        dir: std::path::PathBuf,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `--json` for commands a script reads.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// True for the operator's short commands (not the service, the demo or the dialog):
    /// their output is for a person, so the AWS SDK's own chatter (region lookups) is kept
    /// out of it.
    pub fn is_operator_command(&self) -> bool {
        !matches!(self, Self::Serve(_) | Self::Demo(_) | Self::Dialog(_))
    }
}

/// Whether `--verbose` was given.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Says on stderr, under `--verbose`, what a command is using.
fn verbose(what: std::fmt::Arguments<'_>) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("voxgate: {what}");
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    VERBOSE.store(cli.verbose, Ordering::Relaxed);
    match cli.command {
        Command::Serve(args) => {
            let settings = args.into_settings()?;
            let runtime = Runtime {
                clock: Arc::new(SystemClock),
                aws: crate::cloud::load_sdk_config().await,
            };
            let app = App::build(settings, runtime).await?;
            let served = app.serve(shutdown_signal()).await;
            if crate::app::hurried() {
                served?;
                std::process::exit(130);
            }
            served
        }
        Command::CheckConfig(args) => crate::app::check::run(args).await,
        Command::Tenant(command) => people::tenant(command).await,
        Command::User(command) => people::user(command).await,
        Command::Account(command) => accounts::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Pair(args) => devices::pair(args).await,
        Command::Device(command) => devices::device(command).await,
        Command::DevCa(DevCaCommand::Init { dir, out }) => dev_ca_init(&dir, out),
        Command::Dialog(args) => dialog(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
    }
}

async fn dialog(args: DialogArgs) -> anyhow::Result<()> {
    let model = crate::dialog::load_model(args.model.as_deref(), &args.locale)?;
    let signer = match &args.sign {
        Some(dir) => Some(crate::devca::Signer::load(dir)?),
        None => None,
    };
    let mut conversation = crate::dialog::Conversation::new(
        model,
        crate::dialog::Settings {
            endpoint: args.endpoint.clone(),
            skill_id: args.skill_id.clone(),
            user_id: args.user_id.clone(),
            locale: args.locale.clone(),
            show_json: args.show_json,
        },
        signer,
    );
    match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the script {}", path.display()))?;
            let steps = crate::dialog::parse_script(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            crate::dialog::run_script(
                &mut conversation,
                &steps,
                crate::dialog::no_placeholders,
                std::io::stdout(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        None => crate::dialog::interactive(&mut conversation).await,
    }
}

fn dev_ca_init(dir: &std::path::Path, out: Output) -> anyhow::Result<()> {
    let made = crate::devca::init(dir)?;
    if out.json {
        return print_json(&json!({
            "roots": made.roots.display().to_string(),
            "cert_dir": made.certs.display().to_string(),
            "cert_url": crate::devca::CERT_URL,
        }));
    }
    println!("Made a development CA in {}.", dir.display());
    println!(
        "Serve with:  voxgate serve --alexa-trust-roots {} --alexa-cert-dir {}",
        made.roots.display(),
        made.certs.display()
    );
    println!(
        "Requests signed with {} name {} as their chain.",
        dir.join(crate::devca::KEY_FILE).display(),
        crate::devca::CERT_URL
    );
    Ok(())
}

fn now() -> i64 {
    SystemClock.now().unix_timestamp()
}

/// A time as the CLI prints it: UTC, to the second (`2026-11-24 21:13:11 UTC`).
fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// A time as JSON output carries it: RFC 3339, UTC, to the second.
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The store for a command that reads, or changes what must already be there: an absent
/// SQLite file is reported, never made.
async fn open(db: &DatabaseArgs) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(file) = crate::store::sqlite_file(&db.database_url)
        && !file.exists()
    {
        bail!(
            "there is no voxgate database at {}: `voxgate tenant add` or `voxgate serve` makes \
             one; or point --database-url (VOXGATE_DATABASE_URL) at the existing one",
            file.display()
        );
    }
    create(db).await
}

/// The store for a command that may start a new one (`tenant add`).
async fn create(db: &DatabaseArgs) -> anyhow::Result<Arc<dyn Store>> {
    let store = crate::store::connect(&db.database_url).await?;
    verbose(format_args!(
        "using the {}",
        crate::store::describe(&db.database_url)
    ));
    Ok(store)
}

/// What a command that changes something needs: the store, the sealer (the same settings
/// as `serve`) and the audit log that records the change.
struct Changing {
    store: Arc<dyn Store>,
    sealer: Arc<crate::cloud::seal::Sealer>,
    audit: crate::audit::AuditLog,
}

impl Changing {
    /// Opens an existing store (or, with `may_create`, makes one) and its audit log.
    async fn open(
        db: &DatabaseArgs,
        sealing: &SealingArgs,
        may_create: bool,
    ) -> anyhow::Result<Self> {
        let store = if may_create {
            create(db).await?
        } else {
            open(db).await?
        };
        let sealer = sealer(sealing).await?;
        let audit = audit_log(&store, &sealer, sealing).await?;
        Ok(Self {
            store,
            sealer: Arc::new(sealer),
            audit,
        })
    }
}

/// The sealer of `serve`'s settings, said under `--verbose`.
async fn sealer(sealing: &SealingArgs) -> anyhow::Result<crate::cloud::seal::Sealer> {
    let settings = sealing.sealing();
    match &settings {
        crate::config::Sealing::Kms(key) => {
            verbose(format_args!("sealing secrets with the KMS key {key}"));
        }
        crate::config::Sealing::LocalKeyFile(file) => verbose(format_args!(
            "sealing secrets with the local key file {}",
            file.display()
        )),
    }
    // Only KMS needs AWS settings; the local key file works without them.
    let aws = match &settings {
        crate::config::Sealing::Kms(_) => crate::cloud::load_sdk_config().await,
        crate::config::Sealing::LocalKeyFile(_) => aws_config::SdkConfig::builder().build(),
    };
    Ok(crate::cloud::sealer(&settings, &aws)?)
}

/// An audit entry for something the operator did.
fn operator_entry(
    outcome: crate::audit::Outcome,
    tenant: Option<&crate::store::TenantId>,
    user: Option<&crate::store::UserId>,
    summary: String,
) -> crate::audit::Entry {
    crate::audit::Entry {
        at: now(),
        tenant_id: tenant.map(|t| t.as_str().to_owned()),
        user_id: user.map(|u| u.as_str().to_owned()),
        challenge_id: None,
        actor: crate::audit::Actor::Operator,
        summary,
        digest: String::new(),
        outcome,
        detail: String::new(),
        aws_request_id: None,
    }
}

async fn find_tenant(store: &dyn Store, name: &str) -> anyhow::Result<Tenant> {
    match store.tenant_by_name(name).await? {
        Some(tenant) => Ok(tenant),
        None => bail!(
            "there is no tenant named '{}': list them with `voxgate tenant list`, or create it \
             with `voxgate tenant add {}`",
            name.trim(),
            name.trim()
        ),
    }
}

/// A user named by id, or by name (within `tenant` if given); names must be unambiguous.
async fn find_user(
    store: &dyn Store,
    user: &str,
    tenant: Option<&str>,
) -> anyhow::Result<crate::store::User> {
    let tenant_id = match tenant {
        Some(name) => Some(find_tenant(store, name).await?.id),
        None => None,
    };
    let matches: Vec<_> = store
        .users(tenant_id.as_ref())
        .await?
        .into_iter()
        .filter(|u| u.id.as_str() == user.trim() || u.name.eq_ignore_ascii_case(user.trim()))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => bail!(
            "there is no user '{}': list them with `voxgate user list`",
            user.trim()
        ),
        _ => bail!(
            "several tenants have a user '{}': add --tenant",
            user.trim()
        ),
    }
}

/// The audit log for a command that records something: the chain key (never made over an
/// existing log), checked against the checkpoints, which it then continues.
pub(crate) async fn audit_log(
    store: &Arc<dyn Store>,
    sealer: &crate::cloud::seal::Sealer,
    sealing: &SealingArgs,
) -> anyhow::Result<crate::audit::AuditLog> {
    let key = crate::audit::ChainKey::load(store.as_ref(), sealer).await?;
    let path = sealing.checkpoint_file();
    crate::audit::checkpoint::check_store(store.as_ref(), &path, &key)
        .await
        .map_err(|error| anyhow::anyhow!("{error}; run `voxgate audit verify` to see more"))?;
    let checkpoints = Arc::new(crate::audit::checkpoint::Checkpoints::open(&path, &key)?);
    Ok(crate::audit::AuditLog::new(Arc::clone(store), key).with_checkpoints(checkpoints))
}

/// Resolves on Ctrl-C or SIGTERM, for graceful shutdown. The handlers are installed when
/// this is called, not when the future is first polled: a SIGTERM that arrives as soon as
/// voxgate says it is listening must already mean "stop gracefully", not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                // A second signal during the drain stops at once (what a second Ctrl-C
                // is for); approvals it cuts off are closed as outcome-unknown at the
                // next start, as after a crash.
                tokio::spawn(async move {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                    stop_now();
                });
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                tokio::spawn(async {
                    let _ = tokio::signal::ctrl_c().await;
                    stop_now();
                });
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tokio::spawn(async {
                let _ = tokio::signal::ctrl_c().await;
                stop_now();
            });
        }
        tracing::info!("shutting down: finishing the requests in flight; signal again to stop now");
    }
}

/// On a second stop signal: stop waiting for requests in flight, write what is written
/// behind (the replay ledger, audit checkpoints) and exit with 130; if even that does not
/// end within 5 s, exit anyway.
fn stop_now() {
    tracing::warn!(
        "second stop signal: stopping now; requests still in flight are cut off (an approved \
         operation among them ends as outcome unknown)"
    );
    crate::app::hurry();
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(5));
        std::process::exit(130);
    });
}
