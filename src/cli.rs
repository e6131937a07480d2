//! The `voxgate` command line: `serve` runs the skill service; `tenant`, `account` and
//! `user` are the operator's commands. Every command takes `--database-url`, and those a
//! script would read offer `--json`. Bad input is refused before anything is written.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::app::{App, Runtime};
use crate::clock::{Clock as _, SystemClock};
use crate::cloud::arn::{Region, RoleArn};
use crate::config::{DatabaseArgs, LogArgs, SealingArgs, ServeArgs};
use crate::store::{
    AccountName, AlexaUserId, NewUser, OAuthSubject, Store, Tenant, TenantName, UserName,
};

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
    /// Manage tenants (a team or customer with its own users and AWS accounts).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Link and list customers' AWS accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Enrol and list the people who may use the skill.
    #[command(subcommand)]
    User(UserCommand),
    /// Check, read and export the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a one-time code (10 minutes) that pairs a companion device with a user.
    Pair {
        /// The user: name (with --tenant if several tenants have one) or id.
        #[arg(long)]
        user: String,
        /// The user's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Where people reach voxgate, for the companion link.
        #[arg(
            long,
            env = "VOXGATE_PUBLIC_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        public_url: String,
        /// Sealing of secrets (the same settings as `serve`).
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
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

/// `voxgate device …`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List devices.
    List {
        /// Only this user's devices (name or id).
        #[arg(long)]
        user: Option<String>,
        /// The user's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Revoke a device: its token stops working at once.
    Revoke {
        /// The device id (from `voxgate device list`).
        id: String,
        /// Sealing of secrets (the same settings as `serve`), to write the audit record.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `voxgate audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and compare it with the newest signed checkpoint (and a
    /// head noted elsewhere); report the first broken record or a cut-off tail (non-zero
    /// exit). Uses the same sealing settings as `serve`, to open the chain key.
    Verify {
        /// A head noted earlier (`SEQ:HASH`, as printed by a previous verify): the log must
        /// still hold that record.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        /// Sealing of secrets.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Show the newest records.
    Tail {
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Write every record, oldest first, to standard output.
    Export {
        /// Output format (one JSON object per line).
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// JSON Lines.
    Jsonl,
}

/// `--json` for commands a script reads.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `voxgate tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Its name (unique, regardless of case).
        name: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// List tenants.
    List {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `voxgate account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Link an AWS account: makes a fresh ExternalId, stores role ARN and ExternalId sealed,
    /// and prints what the customer needs to create the role (deploy/customer-role.yaml).
    Link(LinkArgs),
    /// List linked accounts (no secrets).
    List {
        /// Only this tenant's accounts.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `voxgate account link`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The tenant the account belongs to.
    #[arg(long)]
    pub tenant: String,
    /// The role voxgate will assume, e.g. arn:aws:iam::123456789012:role/voxgate-access.
    #[arg(long)]
    pub role_arn: String,
    /// The account's default region, e.g. eu-west-1.
    #[arg(long)]
    pub region: String,
    /// A short label people and the app see ("prod"); default aws-<last 4 digits>.
    #[arg(long)]
    pub name: Option<String>,
    /// voxgate's own AWS account id, trusted by the customer's role.
    #[arg(long, env = "VOXGATE_TRUSTED_ACCOUNT_ID")]
    pub trusted_account_id: Option<String>,
    /// HTTPS URL where deploy/customer-role.yaml is hosted, for the console quick-create link.
    #[arg(long, env = "VOXGATE_ROLE_TEMPLATE_URL")]
    pub role_template_url: Option<String>,
    /// Sealing of secrets.
    #[command(flatten)]
    pub sealing: SealingArgs,
    /// Database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Output format.
    #[command(flatten)]
    pub out: Output,
}

/// `voxgate user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Enrol a user, by Alexa user id and/or OAuth subject.
    Add {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The person's name (shown in the customer's CloudTrail as the source identity).
        #[arg(long)]
        name: String,
        /// Their Alexa user id (amzn1.ask.account.…), as logged when they first speak.
        #[arg(long)]
        alexa_user_id: Option<String>,
        /// Their subject (`sub`) at the OAuth provider used for account linking.
        #[arg(long)]
        oauth_subject: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// List users.
    List {
        /// Only this tenant's users.
        #[arg(long)]
        tenant: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.into_settings()?;
            let runtime = Runtime {
                clock: Arc::new(SystemClock),
                aws: crate::cloud::load_sdk_config().await,
            };
            let app = App::build(settings, runtime).await?;
            app.serve(shutdown_signal()).await
        }
        Command::Tenant(command) => tenant(command).await,
        Command::Account(AccountCommand::Link(args)) => link_account(args).await,
        Command::Account(AccountCommand::List { tenant, db, out }) => {
            list_accounts(tenant, db, out).await
        }
        Command::User(command) => user(command).await,
        Command::Audit(command) => audit(command).await,
        Command::Pair {
            user,
            tenant,
            public_url,
            sealing,
            db,
            out,
        } => pair(&user, tenant.as_deref(), &public_url, &sealing, db, out).await,
        Command::Device(command) => device(command).await,
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
    Ok(crate::store::connect(&db.database_url).await?)
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

async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Add { name, db, out } => {
            let name = TenantName::parse(&name)?;
            let store = create(&db).await?;
            let tenant = store.add_tenant(&name, now()).await?;
            if out.json {
                print_json(&json!(tenant))
            } else {
                println!("Added tenant '{}' ({}).", tenant.name, tenant.id);
                Ok(())
            }
        }
        TenantCommand::List { db, out } => {
            let tenants = open(&db).await?.tenants().await?;
            if out.json {
                return print_json(&json!(tenants));
            }
            if tenants.is_empty() {
                println!("No tenants yet. Add one with `voxgate tenant add NAME`.");
            }
            for t in tenants {
                println!("{}\t{}", t.name, t.id);
            }
            Ok(())
        }
    }
}

async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            tenant,
            name,
            alexa_user_id,
            oauth_subject,
            db,
            out,
        } => {
            let name = UserName::parse(&name)?;
            let alexa_user_id = alexa_user_id
                .as_deref()
                .map(AlexaUserId::parse)
                .transpose()?;
            let oauth_subject = oauth_subject
                .as_deref()
                .map(OAuthSubject::parse)
                .transpose()?;
            if alexa_user_id.is_none() && oauth_subject.is_none() {
                bail!(
                    "say how voxgate will recognise '{name}': give --alexa-user-id (from voxgate's \
                     log when they first speak) or --oauth-subject (with account linking)"
                );
            }
            let store = open(&db).await?;
            let tenant = find_tenant(store.as_ref(), &tenant).await?;
            let user = store
                .add_user(
                    &NewUser {
                        tenant_id: tenant.id.clone(),
                        name,
                        alexa_user_id,
                        oauth_subject,
                    },
                    now(),
                )
                .await?;
            if out.json {
                print_json(&json!(user))
            } else {
                println!(
                    "Enrolled '{}' ({}) in tenant '{}'.",
                    user.name, user.id, tenant.name
                );
                Ok(())
            }
        }
        UserCommand::List { tenant, db, out } => {
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let users = store.users(tenant_id.as_ref()).await?;
            if out.json {
                return print_json(&json!(users));
            }
            for u in users {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.id,
                    u.alexa_user_id.as_deref().unwrap_or("-"),
                    u.oauth_subject.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

async fn link_account(args: LinkArgs) -> anyhow::Result<()> {
    // Everything is checked before anything is written.
    let role_arn = RoleArn::parse(&args.role_arn)?;
    let region = Region::parse(&args.region)?;
    let name = match &args.name {
        Some(name) => AccountName::parse(name)?,
        None => AccountName::parse(&format!("aws-{}", &role_arn.account()[8..]))?,
    };
    let trusted = match args.trusted_account_id.as_deref().map(str::trim) {
        Some(id) if id.len() == 12 && id.chars().all(|c| c.is_ascii_digit()) => Some(id.to_owned()),
        Some(id) => bail!(
            "'{id}' is not an AWS account id: set --trusted-account-id \
             (VOXGATE_TRUSTED_ACCOUNT_ID) to voxgate's own 12-digit account id"
        ),
        None => None,
    };
    let template_url = match args.role_template_url.as_deref() {
        Some(raw) => Some(
            url::Url::parse(raw)
                .ok()
                .filter(|u| u.scheme() == "https")
                .with_context(|| format!("'{raw}' is not an https URL: set --role-template-url to where deploy/customer-role.yaml is hosted"))?,
        ),
        None => None,
    };

    let store = open(&args.db).await?;
    let tenant = find_tenant(store.as_ref(), &args.tenant).await?;
    if store
        .accounts(Some(&tenant.id))
        .await?
        .iter()
        .any(|a| a.name.eq_ignore_ascii_case(name.as_str()))
    {
        bail!(
            "tenant '{}' already has an account named '{name}': choose another with --name",
            tenant.name
        );
    }

    let aws = crate::cloud::load_sdk_config().await;
    let sealer = crate::cloud::sealer(&args.sealing.sealing(), &aws)?;
    let crate::accounts::Linked {
        account: linked,
        external_id,
    } = crate::accounts::link(
        store.as_ref(),
        &sealer,
        &tenant,
        &name,
        &role_arn,
        &region,
        now(),
    )
    .await?;

    let trusted_text = trusted
        .clone()
        .unwrap_or_else(|| "<voxgate's AWS account id: set VOXGATE_TRUSTED_ACCOUNT_ID>".into());
    let role = role_arn.name();
    let role_path = role_arn.path();
    let parameters = json!({
        "VoxgateAccountId": trusted_text,
        "ExternalId": external_id.expose(),
        "RoleName": role,
        "RolePath": role_path,
    });
    let cli_command = format!(
        "aws cloudformation create-stack --stack-name voxgate-access --region {region} \
         --capabilities CAPABILITY_NAMED_IAM --template-body file://deploy/customer-role.yaml \
         --parameters ParameterKey=VoxgateAccountId,ParameterValue={trusted_text} \
         ParameterKey=ExternalId,ParameterValue={} ParameterKey=RoleName,ParameterValue={role} \
         ParameterKey=RolePath,ParameterValue={role_path}",
        external_id.expose()
    );
    let quick_create = template_url.map(|template| {
        let mut url = url::Url::parse(&format!(
            "https://console.aws.amazon.com/cloudformation/home?region={region}"
        ))
        .expect("a constant URL");
        let mut fragment = url::form_urlencoded::Serializer::new(String::new());
        fragment
            .append_pair("templateURL", template.as_str())
            .append_pair("stackName", "voxgate-access")
            .append_pair("param_VoxgateAccountId", &trusted_text)
            .append_pair("param_ExternalId", external_id.expose())
            .append_pair("param_RoleName", role)
            .append_pair("param_RolePath", &role_path);
        url.set_fragment(Some(&format!("/stacks/quickcreate?{}", fragment.finish())));
        url.to_string()
    });

    if args.out.json {
        return print_json(&json!({
            "account": {
                "id": linked.id,
                "tenant": tenant.name,
                "name": linked.name,
                "region": linked.region,
            },
            "external_id": external_id.expose(),
            "template_parameters": parameters,
            "cli_command": cli_command,
            "quick_create_url": quick_create,
        }));
    }
    println!(
        "Linked account '{}' ({}) to tenant '{}', default region {}.\n",
        linked.name, linked.id, tenant.name, linked.region
    );
    println!("The customer creates the role in their account with deploy/customer-role.yaml:");
    println!("  ExternalId        {}", external_id.expose());
    println!("  VoxgateAccountId  {trusted_text}");
    println!("  RoleName          {role}");
    println!("  RolePath          {role_path}\n");
    println!("With the AWS CLI:\n  {cli_command}\n");
    match quick_create {
        Some(url) => println!("Or in the AWS console (quick-create):\n  {url}"),
        None => println!(
            "For a one-click console link, host deploy/customer-role.yaml over HTTPS and set \
             VOXGATE_ROLE_TEMPLATE_URL."
        ),
    }
    Ok(())
}

async fn list_accounts(
    tenant: Option<String>,
    db: DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let tenants = store.tenants().await?;
    let tenant_id = match &tenant {
        Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
        None => None,
    };
    let accounts = store.accounts(tenant_id.as_ref()).await?;
    let tenant_name = |id: &crate::store::TenantId| {
        tenants
            .iter()
            .find(|t| &t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    if out.json {
        let rows: Vec<_> = accounts
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "tenant": tenant_name(&a.tenant_id),
                    "name": a.name,
                    "region": a.region,
                    "created_at": a.created_at,
                })
            })
            .collect();
        return print_json(&json!(rows));
    }
    if accounts.is_empty() {
        println!("No linked accounts. Link one with `voxgate account link`.");
    }
    for a in accounts {
        println!(
            "{}\t{}\t{}\t{}",
            tenant_name(&a.tenant_id),
            a.name,
            a.region,
            a.id
        );
    }
    Ok(())
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

async fn pair(
    user: &str,
    tenant: Option<&str>,
    public_url: &str,
    sealing: &SealingArgs,
    db: DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let base = url::Url::parse(public_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| {
            format!("'{public_url}' is not an http(s) URL: set --public-url (VOXGATE_PUBLIC_URL)")
        })?;
    let loopback = match base.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        eprintln!(
            "voxgate: warning: the link points at {}, which only this machine can open; set \
             --public-url (VOXGATE_PUBLIC_URL) to the address phones reach voxgate at",
            base.host_str().unwrap_or_default()
        );
    }
    let store = open(&db).await?;
    let user = find_user(store.as_ref(), user, tenant).await?;
    let now = SystemClock.now();
    let aws = crate::cloud::load_sdk_config().await;
    let sealer = crate::cloud::sealer(&sealing.sealing(), &aws)?;
    let audit = audit_log(&store, &sealer, sealing).await?;
    let key = crate::companion::PairingKey::load(store.as_ref(), &sealer).await?;
    let code =
        crate::companion::issue_pairing_code(store.as_ref(), &audit, &key, &user, now).await?;
    let mut link = base
        .join("app")
        .context("the public URL cannot take a path")?;
    link.set_fragment(Some(&format!("code={code}")));
    let expires = (now + crate::companion::PAIRING_CODE_TTL)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    if out.json {
        return print_json(
            &json!({"user": user.name, "code": code, "url": link.as_str(), "expires_at": expires}),
        );
    }
    println!("Pairing code for {}: {code}", user.name);
    println!("Open {link} on their phone, or type the code into the voxgate app.");
    println!("It works once, until {expires}.");
    Ok(())
}

async fn device(command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::List {
            user,
            tenant,
            db,
            out,
        } => {
            let store = open(&db).await?;
            let user_id = match &user {
                Some(name) => Some(find_user(store.as_ref(), name, tenant.as_deref()).await?.id),
                None => None,
            };
            let devices = store.devices(user_id.as_ref()).await?;
            if out.json {
                return print_json(&json!(devices));
            }
            if devices.is_empty() {
                println!("No paired devices.");
            }
            for d in devices {
                let state = if d.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}\t{state}", d.id, d.user_id);
            }
            Ok(())
        }
        DeviceCommand::Revoke {
            id,
            sealing,
            db,
            out,
        } => {
            let store = open(&db).await?;
            let not_active = || {
                anyhow::anyhow!(
                    "there is no active device '{}': list them with `voxgate device list`",
                    id.trim()
                )
            };
            let device = store.device(id.trim()).await?.ok_or_else(not_active)?;
            let user = store
                .user(&crate::store::UserId(device.user_id.clone()))
                .await?
                .ok_or_else(not_active)?;
            let aws = crate::cloud::load_sdk_config().await;
            let sealer = crate::cloud::sealer(&sealing.sealing(), &aws)?;
            let audit = audit_log(&store, &sealer, &sealing).await?;
            if !crate::companion::revoke(
                store.as_ref(),
                &audit,
                id.trim(),
                &user,
                false,
                SystemClock.now(),
            )
            .await?
            {
                return Err(not_active());
            }
            if out.json {
                print_json(&json!({"id": id.trim(), "revoked": true}))
            } else {
                println!("Revoked device {}; its token no longer works.", id.trim());
                Ok(())
            }
        }
    }
}

const AUDIT_PAGE: i64 = 1_000;

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            expect_head,
            sealing,
            db,
            out,
        } => verify_audit(expect_head.as_deref(), &sealing, &db, out).await,
        AuditCommand::Tail {
            tenant,
            lines,
            db,
            out,
        } => {
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let records = store
                .audit_tail(tenant_id.as_ref(), lines.clamp(1, 10_000))
                .await?;
            if out.json {
                return print_json(&json!(records));
            }
            for r in records {
                let at = time::OffsetDateTime::from_unix_timestamp(r.at)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                println!(
                    "{:>6}  {at}  {:<22} {}{}",
                    r.seq,
                    r.outcome,
                    r.summary,
                    r.aws_request_id
                        .map(|id| format!("  [aws request {id}]"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            tenant,
            db,
        } => {
            use std::io::Write as _;
            let store = open(&db).await?;
            let tenant_id = match &tenant {
                Some(name) => Some(find_tenant(store.as_ref(), name).await?.id),
                None => None,
            };
            let stdout = std::io::stdout();
            let mut stdout = stdout.lock();
            let mut after = 0;
            loop {
                let page = store
                    .audit_records(tenant_id.as_ref(), after, AUDIT_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for record in &page {
                    writeln!(stdout, "{}", serde_json::to_string(record)?)?;
                }
            }
            Ok(())
        }
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

/// `SEQ:HASH` as printed by `audit verify`.
fn parse_head(raw: &str) -> anyhow::Result<(i64, String)> {
    let (seq, hash) = raw.trim().split_once(':').with_context(|| {
        format!("'{raw}' is not SEQ:HASH: give --expect-head as printed by `voxgate audit verify`, e.g. 42:3fa9…")
    })?;
    let seq: i64 = seq
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .with_context(|| format!("'{seq}' is not a record number in --expect-head"))?;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("'{hash}' is not a record hash (64 hex digits) in --expect-head");
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

async fn verify_audit(
    expect_head: Option<&str>,
    sealing: &SealingArgs,
    db: &DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let expected = expect_head.map(parse_head).transpose()?;
    let store = open(db).await?;
    let aws = crate::cloud::load_sdk_config().await;
    let sealer = crate::cloud::sealer(&sealing.sealing(), &aws)?;
    let fail = |reason: String, first_broken: Option<i64>| -> anyhow::Result<()> {
        if out.json {
            print_json(&json!({"intact": false, "first_broken": first_broken, "reason": reason}))?;
        }
        bail!("the audit log is NOT intact: {reason}")
    };
    // Reading never makes a key; records without one cannot be vouched for.
    let Some(key) = crate::audit::ChainKey::existing(store.as_ref(), &sealer).await? else {
        if store.audit_last().await?.is_none() && expected.is_none() {
            if out.json {
                return print_json(&json!({"intact": true, "records": 0}));
            }
            println!("The audit log is empty.");
            return Ok(());
        }
        return fail(crate::audit::ChainKeyError::Missing.to_string(), None);
    };
    let mut check = crate::audit::ChainCheck::new(key.clone());
    let mut after = 0;
    loop {
        let page = store.audit_records(None, after, AUDIT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            if let Err(broken) = check.feed(record) {
                return fail(broken.to_string(), Some(broken.seq()));
            }
        }
    }
    let path = sealing.checkpoint_file();
    let reading = match crate::audit::checkpoint::check_store(store.as_ref(), &path, &key).await {
        Ok(reading) => reading,
        Err(error) => return fail(error.to_string(), None),
    };
    if let Some((seq, hash)) = &expected {
        let at_seq = store.audit_record(*seq).await?;
        if let Err(behind) = crate::audit::checkpoint::compare(
            *seq,
            hash,
            check.checked(),
            at_seq.as_ref().map(|r| r.hash.as_str()),
            "--expect-head",
        ) {
            return fail(behind.to_string(), None);
        }
    }
    let newest = reading.newest.as_ref().map(|c| c.seq);
    if out.json {
        return print_json(&json!({
            "intact": true,
            "records": check.checked(),
            "head": format!("{}:{}", check.checked(), check.head()),
            "checkpoint_file": path.display().to_string(),
            "checkpoints": reading.genuine,
            "newest_checkpoint": newest,
            "not_genuine_checkpoint_lines": reading.not_genuine,
        }));
    }
    println!("The audit log is intact: {} records.", check.checked());
    match newest {
        Some(seq) => println!(
            "It holds every record up to the newest checkpoint ({seq}) in {}.",
            path.display()
        ),
        None => println!(
            "No checkpoints in {} to compare with (keep that file, or note the head below).",
            path.display()
        ),
    }
    if reading.not_genuine > 0 {
        println!(
            "Warning: {} line(s) of {} are not signed with this log's key and were ignored.",
            reading.not_genuine,
            path.display()
        );
    }
    println!(
        "Head: {}:{} (note it elsewhere; `--expect-head` checks against it later)",
        check.checked(),
        check.head()
    );
    Ok(())
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
