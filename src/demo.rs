//! `voxgate demo`: a complete local world in one command. moto stands in for AWS (found on
//! PATH or in `.venv`, installed into `.venv` when missing), seeded with two linked accounts
//! and the resources every operation of the catalog needs; voxgate serves on SQLite in the
//! demo directory with full request verification through a development CA; a companion is
//! paired (its URL printed for a browser); then the dialog runs, every request signed.
//! Ctrl-C, Ctrl-D or `quit` stops everything it started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::app::{App, Runtime};
use crate::clock::{Clock as _, SystemClock};
use crate::cloud::arn::{Region, RoleArn};
use crate::config::ServeArgs;
use crate::store::{AccountName, AlexaUserId, NewUser, Store, TenantName, UserName};

/// The skill id of the demo.
pub const SKILL_ID: &str = "amzn1.ask.skill.voxgate-demo";
/// The Alexa user id the demo speaks as.
pub const USER_ID: &str = "amzn1.ask.account.VOXGATE-DEMO";
/// The moto version `.venv` gets when moto is missing (the one the tests use).
pub const MOTO_VERSION: &str = "5.2.5";
/// The placeholder demo scripts use for the code the companion shows.
pub const COMPANION_CODE: &str = "{companion-code}";

/// The demo's two AWS accounts: (label, account id, region).
pub const ACCOUNTS: [(&str, &str, &str); 2] = [
    ("prod", "111111111111", "eu-west-1"),
    ("staging", "222222222222", "eu-west-1"),
];

const MARKER: &str = ".voxgate-demo";

/// `voxgate demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its database, keys, development CA and log (made afresh on every
    /// run; a directory that is not a voxgate demo's is never touched).
    #[arg(long, default_value = "voxgate-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// The moto_server to run (default: moto_server on PATH, else .venv/bin/moto_server,
    /// else voxgate's own virtualenv in ~/.cache/voxgate/moto-venv, installed there with pip
    /// when missing).
    #[arg(long, env = "VOXGATE_MOTO_SERVER", value_name = "PATH")]
    pub moto_server: Option<PathBuf>,
    /// Run a conversation from FILE (`say:` and `expect:` lines; `{companion-code}` is the
    /// code the paired companion shows at that moment) and exit with its result.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Print each raw request and response.
    #[arg(long)]
    pub show_json: bool,
}

impl DemoArgs {
    /// Makes the demo directory afresh (refusing one that is not a demo's) and returns
    /// where the log goes.
    pub fn prepare(&self) -> anyhow::Result<PathBuf> {
        let dir = &self.dir;
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_none();
            if !empty && !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and is not a voxgate demo directory; choose another with --dir",
                    dir.display()
                );
            }
            // Only what the demo itself made goes; anything else put there stays.
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let ours = name == "dev-ca"
                    || name.starts_with("voxgate.")
                    || name == "moto.log"
                    || name == MARKER;
                if !ours {
                    continue;
                }
                let path = entry.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
                .with_context(|| format!("cannot clear {}", path.display()))?;
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(
            dir.join(MARKER),
            "made by `voxgate demo`; its files here are made afresh on its next run\n",
        )?;
        Ok(dir.join("voxgate.log"))
    }
}

/// A child process killed when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// moto_server: the given one, on PATH, in .venv, or installed into .venv.
async fn moto_server(args: &DemoArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.moto_server {
        if path.exists() {
            return Ok(path.clone());
        }
        bail!("--moto-server {} does not exist", path.display());
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.is_file())
    }) {
        return Ok(path);
    }
    let local = PathBuf::from(".venv").join("bin").join("moto_server");
    if local.exists() {
        return Ok(local);
    }
    // voxgate's own virtualenv: a project's .venv is never changed.
    let venv = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("voxgate")
        .join("moto-venv");
    let server = venv.join("bin").join("moto_server");
    if server.exists() {
        return Ok(server);
    }
    let python = which("python3").context(
        "the demo needs moto, a local AWS endpoint, and Python 3 to install it: install python3 \
         and python3-venv (Debian: apt-get install python3 python3-venv), or give --moto-server",
    )?;
    println!(
        "Installing moto {MOTO_VERSION} into {} (once; about a minute)...",
        venv.display()
    );
    let made = tokio::process::Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await?;
    if !made.success() {
        bail!(
            "could not make {} with {} -m venv: install python3-venv (Debian: apt-get install \
             python3-venv)",
            venv.display(),
            python.display()
        );
    }
    let installed = tokio::process::Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("moto[server]=={MOTO_VERSION}"))
        .status()
        .await?;
    if !installed.success() || !server.exists() {
        bail!(
            "could not install moto into {} with pip (is PyPI reachable?)",
            venv.display()
        );
    }
    Ok(server)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

/// Starts moto on a free port; its URL.
async fn start_moto(server: &Path, log: &Path) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(log)?;
    let child = tokio::process::Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {}", server.display()))?;
    let child = Child(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if std::time::Instant::now() > deadline {
            bail!("moto did not start on port {port} within a minute");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// SDK settings pointing at moto as voxgate's own identity.
fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new("demo", "demo", None, None, "demo"),
        ))
        .build()
}

/// SDK settings acting in `account` (moto's multi-account mode, through AssumeRole).
async fn sdk_in(
    base: &aws_config::SdkConfig,
    account: &str,
    region: &str,
) -> anyhow::Result<aws_config::SdkConfig> {
    let out = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/demo-seeder"))
        .role_session_name("demo-seeder")
        .send()
        .await
        .context("moto refused AssumeRole")?;
    let c = out.credentials().context("moto returned no credentials")?;
    Ok(base
        .to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                None,
                "demo-seeder",
            ),
        ))
        .region(aws_config::Region::new(region.to_owned()))
        .build())
}

async fn instance(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    managed: bool,
    running: bool,
) -> anyhow::Result<String> {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value(name).build())
        .tags(
            Tag::builder()
                .key("voxgate:managed")
                .value(if managed { "true" } else { "false" })
                .build(),
        )
        .build();
    let out = ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec)
        .send()
        .await?;
    let id = out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .context("moto started no instance")?
        .to_owned();
    if !running {
        ec2.stop_instances().instance_ids(&id).send().await?;
    }
    Ok(id)
}

/// Seeds one account with what the catalog's operations use.
async fn seed_account(
    moto: &str,
    base: &aws_config::SdkConfig,
    label: &str,
    account: &str,
    region: &str,
) -> anyhow::Result<()> {
    use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
    let here = sdk_in(base, account, region).await?;
    let global = sdk_in(base, account, "us-east-1").await?;
    let ec2 = aws_sdk_ec2::Client::new(&here);
    if label == "prod" {
        instance(&ec2, "web-server", true, true).await?;
        instance(&ec2, "database", false, true).await?;
        instance(&ec2, "build-2", true, false).await?;
        // Unused and costing money: a managed volume and an idle Elastic IP.
        ec2.create_volume()
            .availability_zone(format!("{region}a"))
            .size(50)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .tags(Tag::builder().key("Name").value("old-scratch").build())
                    .tags(Tag::builder().key("voxgate:managed").value("true").build())
                    .build(),
            )
            .send()
            .await?;
        ec2.allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::ElasticIp)
                    .tags(Tag::builder().key("voxgate:managed").value("true").build())
                    .build(),
            )
            .send()
            .await?;
        // Something for the security check to find.
        let group = ec2
            .create_security_group()
            .group_name("ssh-from-anywhere")
            .description("SSH open to the world")
            .send()
            .await?;
        ec2.authorize_security_group_ingress()
            .group_id(group.group_id().unwrap_or_default())
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .send()
            .await?;
        let iam = aws_sdk_iam::Client::new(&global);
        iam.create_user().user_name("deploy-bot").send().await?;
        iam.create_access_key()
            .user_name("deploy-bot")
            .send()
            .await?;
        // The health check document the customer's stack creates.
        aws_sdk_ssm::Client::new(&here)
            .create_document()
            .name(crate::ops::ssm::HEALTH_CHECK_DOCUMENT)
            .document_type(aws_sdk_ssm::types::DocumentType::Command)
            .content(
                json!({"schemaVersion": "2.2", "description": "voxgate health check",
                       "mainSteps": [{"action": "aws:runShellScript", "name": "healthCheck",
                                      "inputs": {"runCommand": ["uptime", "df -h /", "free -m"]}}]})
                .to_string(),
            )
            .send()
            .await?;
        site(
            &aws_sdk_cloudfront::Client::new(&global),
            "shop.example.com",
        )
        .await?;
    } else {
        instance(&ec2, "reports", true, true).await?;
        vpn(&ec2, "office").await?;
    }
    // What Cost Explorer will say this month.
    let spent = if label == "prod" { "1234.56" } else { "87.20" };
    let queued = json!({"account_id": account, "results": [{"ResultsByTime": [{
        "TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"},
        "Total": {"UnblendedCost": {"Amount": spent, "Unit": "USD"}},
        "Groups": [], "Estimated": true}]}]});
    let status = reqwest::Client::new()
        .post(format!("{moto}/moto-api/static/ce/cost-and-usage-results"))
        .header("content-type", "application/json")
        .body(queued.to_string())
        .send()
        .await?
        .status();
    if !status.is_success() {
        bail!("moto did not take the demo's cost data (HTTP {status})");
    }
    Ok(())
}

/// A site-to-site VPN connection named `name`.
async fn vpn(ec2: &aws_sdk_ec2::Client, name: &str) -> anyhow::Result<()> {
    use aws_sdk_ec2::types::{GatewayType, ResourceType, Tag, TagSpecification};
    let customer = ec2
        .create_customer_gateway()
        .r#type(GatewayType::Ipsec1)
        .public_ip("203.0.113.10")
        .bgp_asn(65000)
        .send()
        .await?;
    let gateway = ec2
        .create_vpn_gateway()
        .r#type(GatewayType::Ipsec1)
        .send()
        .await?;
    ec2.create_vpn_connection()
        .r#type("ipsec.1")
        .customer_gateway_id(
            customer
                .customer_gateway()
                .and_then(|c| c.customer_gateway_id())
                .unwrap_or_default(),
        )
        .vpn_gateway_id(
            gateway
                .vpn_gateway()
                .and_then(|g| g.vpn_gateway_id())
                .unwrap_or_default(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::VpnConnection)
                .tags(Tag::builder().key("Name").value(name).build())
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// A managed CloudFront distribution serving `alias`.
async fn site(cloudfront: &aws_sdk_cloudfront::Client, alias: &str) -> anyhow::Result<()> {
    use aws_sdk_cloudfront::types::{
        Aliases, DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, Origin,
        Origins, S3OriginConfig, Tag, Tags, ViewerProtocolPolicy,
    };
    let origin = Origin::builder()
        .id("origin")
        .domain_name("shop-assets.s3.amazonaws.com")
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()?;
    let config = DistributionConfig::builder()
        .caller_reference(format!("voxgate-demo-{alias}"))
        .comment("the shop")
        .enabled(true)
        .aliases(Aliases::builder().quantity(1).items(alias).build()?)
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("origin")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .build()?,
        )
        .build()?;
    let tags = Tags::builder()
        .items(
            Tag::builder()
                .key("voxgate:managed")
                .value("true")
                .build()?,
        )
        .build();
    cloudfront
        .create_distribution_with_tags()
        .distribution_config_with_tags(
            DistributionConfigWithTags::builder()
                .distribution_config(config)
                .tags(tags)
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

fn serve_args(dir: &Path, ca: &crate::devca::Made) -> ServeArgs {
    let mut args = ServeArgs::local(
        format!("sqlite://{}", dir.join("voxgate.db").display()),
        dir.join("voxgate.key"),
    );
    args.skill_ids = vec![SKILL_ID.to_owned()];
    args.alexa_trust_roots = Some(ca.roots.clone());
    args.alexa_cert_dir = Some(ca.certs.clone());
    args
}

/// The tenant, its user and its two accounts; a pairing code for the demo's own device.
async fn seed_store(args: &ServeArgs, aws: &aws_config::SdkConfig) -> anyhow::Result<String> {
    let store: Arc<dyn Store> = crate::store::connect(&args.database.database_url).await?;
    let sealer = crate::cloud::sealer(&args.sealing.sealing(), aws)?;
    let now = SystemClock.now();
    let tenant = store
        .add_tenant(&TenantName::parse("demo")?, now.unix_timestamp())
        .await?;
    let user = store
        .add_user(
            &NewUser {
                tenant_id: tenant.id.clone(),
                name: UserName::parse("you")?,
                alexa_user_id: Some(AlexaUserId::parse(USER_ID)?),
                oauth_subject: None,
            },
            now.unix_timestamp(),
        )
        .await?;
    for (label, account, region) in ACCOUNTS {
        crate::accounts::link(
            store.as_ref(),
            &sealer,
            &tenant,
            &AccountName::parse(label)?,
            &RoleArn::parse(&format!("arn:aws:iam::{account}:role/voxgate-access"))?,
            &Region::parse(region)?,
            now.unix_timestamp(),
        )
        .await?;
    }
    pairing_code(&store, args, aws, &user).await
}

/// A new pairing code for `user` (the older unused one stops working).
async fn pairing_code(
    store: &Arc<dyn Store>,
    args: &ServeArgs,
    aws: &aws_config::SdkConfig,
    user: &crate::store::User,
) -> anyhow::Result<String> {
    let sealer = crate::cloud::sealer(&args.sealing.sealing(), aws)?;
    let audit = crate::cli::audit_log(store, &sealer, &args.sealing).await?;
    let key = crate::companion::PairingKey::load(store.as_ref(), &sealer).await?;
    Ok(
        crate::companion::issue_pairing_code(store.as_ref(), &audit, &key, user, SystemClock.now())
            .await?,
    )
}

/// The code the demo's paired companion shows for what is waiting.
async fn companion_code(base: &str, token: &str) -> Result<String, String> {
    let text = reqwest::Client::new()
        .get(format!("{base}/api/v1/companion/challenges"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("the companion API did not answer: {e}"))?
        .text()
        .await
        .map_err(|e| format!("the companion API did not answer: {e}"))?;
    let answer: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the companion API answered something else ({e}): {text}"))?;
    answer
        .pointer("/challenges/0/code")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the companion shows nothing waiting for a code".to_owned())
}

/// Ctrl-C, or the terminal closing (SIGHUP), or SIGTERM. The handlers are installed when
/// this is called, so a signal during setup stops the demo cleanly (and the moto it
/// started) instead of killing it.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut interrupt), Ok(mut hangup), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = hangup.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the demo until the dialog ends or Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Installed first: a signal during the setup below ends the demo cleanly.
    let stopping = stop_signal();
    let dir = args.dir.clone();
    let moto_path = moto_server(&args).await?;
    let (moto_child, moto) = start_moto(&moto_path, &dir.join("moto.log")).await?;
    let aws = sdk_config(&moto);
    let ca = crate::devca::init(&dir.join("dev-ca"))?;
    let serve = serve_args(&dir, &ca);
    for (label, account, region) in ACCOUNTS {
        seed_account(&moto, &aws, label, account, region)
            .await
            .with_context(|| format!("could not seed the {label} account in moto"))?;
    }
    let own_code = seed_store(&serve, &aws).await?;

    let runtime = Runtime {
        clock: Arc::new(SystemClock),
        aws: aws.clone(),
    };
    let app = App::build(serve.clone().into_settings()?, runtime).await?;
    let base = format!("http://{}", app.local_addr()?);
    let store = app.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));

    // The demo's own companion, to read codes for scripts; then a code for a browser.
    let paired = reqwest::Client::new()
        .post(format!("{base}/api/v1/companion/pair"))
        .header("content-type", "application/json")
        .body(json!({"code": own_code, "name": "voxgate demo"}).to_string())
        .send()
        .await?
        .text()
        .await?;
    let paired: Value = serde_json::from_str(&paired)
        .with_context(|| format!("the demo could not pair its companion: {paired}"))?;
    let token = paired
        .get("token")
        .and_then(Value::as_str)
        .with_context(|| format!("the demo could not pair its companion: {paired}"))?
        .to_owned();
    let user = store
        .user_by_alexa_id(USER_ID)
        .await?
        .context("the demo user is gone")?;
    let browser_code = pairing_code(&store, &serve, &aws, &user).await?;

    println!("voxgate demo: everything runs on this machine; nothing reaches AWS or Amazon.");
    println!("  AWS (moto)     {moto}  accounts prod 111111111111 and staging 222222222222");
    println!(
        "  voxgate        {base}  SQLite in {}/, every request signed by a local CA and verified",
        dir.display()
    );
    println!("  companion app  {base}/app#code={browser_code}  (open it to see the codes)");
    println!("  log            {}", dir.join("voxgate.log").display());
    println!(
        "Try: \"ask cloud gate what's running\", \"stop the web server\", then the code the app \
         shows; \"help\" lists more."
    );

    let model = crate::dialog::load_model(None, "en-US")?;
    let signer = crate::devca::Signer::load(&dir.join("dev-ca"))?;
    let mut conversation = crate::dialog::Conversation::new(
        model,
        crate::dialog::Settings {
            endpoint: format!("{base}/alexa"),
            skill_id: SKILL_ID.to_owned(),
            user_id: USER_ID.to_owned(),
            locale: "en-US".to_owned(),
            show_json: args.show_json,
        },
        Some(signer),
    );
    let talk = async {
        match &args.script {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the script {}", path.display()))?;
                let steps = crate::dialog::parse_script(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let fill = |line: String| {
                    let (base, token) = (base.clone(), token.clone());
                    async move {
                        if line.contains(COMPANION_CODE) {
                            let code = companion_code(&base, &token).await?;
                            Ok(line.replace(COMPANION_CODE, &code))
                        } else {
                            Ok(line)
                        }
                    }
                };
                crate::dialog::run_script(&mut conversation, &steps, fill, std::io::stdout())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            None => crate::dialog::interactive(&mut conversation).await,
        }
    };
    let result = tokio::select! {
        result = talk => result,
        () = stopping => {
            println!();
            Ok(())
        }
    };
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(25), server).await;
    drop(moto_child);
    result
}
