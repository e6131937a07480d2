//! `voxgate account …`: linking customers' AWS accounts, showing again what the customer
//! needs, checking a link, listing and unlinking. Every change (and every time an
//! ExternalId is shown again) is audited.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::table::Table;
use super::{
    Changing, Output, find_tenant, now, open, operator_entry, print_json, rfc3339, verbose, when,
};
use crate::accounts::{Finding, LinkReport};
use crate::audit::Outcome;
use crate::cloud::arn::{ExternalId, Region, RoleArn};
use crate::config::{DatabaseArgs, SealingArgs};
use crate::store::{AccountName, LinkedAccount, Removal, Store, StoreError, Tenant};

/// `voxgate account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Link an AWS account: makes a fresh ExternalId, stores role ARN and ExternalId sealed,
    /// and prints what the customer needs to create the role (deploy/customer-role.yaml).
    Link(LinkArgs),
    /// Print again what the customer needs to create the role (ExternalId included).
    Show {
        /// The account's name.
        name: String,
        /// The account's tenant (needed if several tenants have an account by that name).
        #[arg(long)]
        tenant: Option<String>,
        /// What the customer's role must trust.
        #[command(flatten)]
        customer: CustomerArgs,
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
    /// Check a link: assume the role once (as serve would) and report what it may and may
    /// not do. Changes nothing; exits non-zero if the role is not set up as it should be.
    Check {
        /// The account's name.
        name: String,
        /// The account's tenant.
        #[arg(long)]
        tenant: Option<String>,
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
    /// List linked accounts with their AWS account ids (no secrets).
    List {
        /// Only this tenant's accounts.
        #[arg(long)]
        tenant: Option<String>,
        /// Sealing of secrets (the same settings as `serve`): the AWS account id is read
        /// from the sealed role ARN.
        #[command(flatten)]
        sealing: SealingArgs,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Unlink an account: voxgate stops using it at once and forgets its role ARN and
    /// ExternalId. Refused while an operation on it is waiting for a code or running.
    Unlink {
        /// The account's name.
        name: String,
        /// The account's tenant.
        #[arg(long)]
        tenant: Option<String>,
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

/// What the customer's role template needs from voxgate's side.
#[derive(Debug, Clone, Args)]
pub struct CustomerArgs {
    /// voxgate's own AWS account id (or the ARN of the IAM role voxgate runs as): the
    /// principal the customer's role trusts.
    #[arg(
        long,
        env = "VOXGATE_TRUSTED_ACCOUNT_ID",
        value_name = "ACCOUNT_ID|ROLE_ARN"
    )]
    pub trusted_account_id: Option<String>,
    /// HTTPS URL where deploy/customer-role.yaml is hosted, for the console quick-create link.
    #[arg(long, env = "VOXGATE_ROLE_TEMPLATE_URL", value_name = "URL")]
    pub role_template_url: Option<String>,
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
    /// After linking, assume the role once and report what it may and may not do (for a
    /// role the customer has already created).
    #[arg(long)]
    pub check: bool,
    /// What the customer's role must trust.
    #[command(flatten)]
    pub customer: CustomerArgs,
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

pub(super) async fn run(command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Link(args) => link(args).await,
        AccountCommand::Show {
            name,
            tenant,
            customer,
            sealing,
            db,
            out,
        } => show(&name, tenant.as_deref(), &customer, &sealing, &db, out).await,
        AccountCommand::Check {
            name,
            tenant,
            sealing,
            db,
            out,
        } => {
            let changing = Changing::open(&db, &sealing, false).await?;
            let (account, tenant) =
                find_account(changing.store.as_ref(), &name, tenant.as_deref()).await?;
            let report = check(&changing, &account).await?;
            print_report(&account, &tenant, &report, out)
        }
        AccountCommand::List {
            tenant,
            sealing,
            db,
            out,
        } => list(tenant, &sealing, db, out).await,
        AccountCommand::Unlink {
            name,
            tenant,
            sealing,
            db,
            out,
        } => unlink(&name, tenant.as_deref(), &sealing, &db, out).await,
    }
}

/// The principal the customer's role trusts: a 12-digit account id or a role ARN.
fn trusted_principal(customer: &CustomerArgs) -> anyhow::Result<String> {
    let Some(raw) = customer.trusted_account_id.as_deref().map(str::trim) else {
        bail!(
            "say which AWS account voxgate runs in: set --trusted-account-id \
             (VOXGATE_TRUSTED_ACCOUNT_ID) to voxgate's own 12-digit account id (or the ARN of \
             the role it runs as), so the customer's role can trust it"
        );
    };
    if raw.len() == 12 && raw.chars().all(|c| c.is_ascii_digit()) {
        return Ok(raw.to_owned());
    }
    if raw.starts_with("arn:") {
        return Ok(RoleArn::parse(raw)?.as_str().to_owned());
    }
    bail!(
        "'{raw}' is not an AWS account id: set --trusted-account-id \
         (VOXGATE_TRUSTED_ACCOUNT_ID) to voxgate's own 12-digit account id (or the ARN of the \
         role it runs as)"
    )
}

fn template_url(customer: &CustomerArgs) -> anyhow::Result<Option<url::Url>> {
    customer
        .role_template_url
        .as_deref()
        .map(|raw| {
            url::Url::parse(raw)
                .ok()
                .filter(|u| u.scheme() == "https")
                .with_context(|| {
                    format!(
                        "'{raw}' is not an https URL: set --role-template-url to where \
                         deploy/customer-role.yaml is hosted"
                    )
                })
        })
        .transpose()
}

async fn link(args: LinkArgs) -> anyhow::Result<()> {
    // Everything is checked before anything is written.
    let role_arn = RoleArn::parse(&args.role_arn)?;
    let region = Region::known(&args.region)?;
    let name = match &args.name {
        Some(name) => AccountName::parse(name)?,
        None => AccountName::parse(&format!("aws-{}", &role_arn.account()[8..]))?,
    };
    let trusted = trusted_principal(&args.customer)?;
    let template = template_url(&args.customer)?;

    let changing = Changing::open(&args.db, &args.sealing, false).await?;
    let store = changing.store.as_ref();
    let tenant = find_tenant(store, &args.tenant).await?;
    if let crate::config::Sealing::LocalKeyFile(file) = args.sealing.sealing() {
        eprintln!(
            "voxgate: warning: SECRETS ARE SEALED WITH A LOCAL KEY FILE ({}): for development \
             only; set --kms-key-id (VOXGATE_KMS_KEY_ID) to seal with AWS KMS",
            file.display()
        );
    }
    if let Some(existing) = same_name(store, &tenant, name.as_str()).await? {
        bail!(
            "tenant '{}' already has an account named '{}' (linked {}): choose another with \
             --name",
            tenant.name,
            existing.name,
            when(existing.created_at)
        );
    }
    let (new, external_id) =
        crate::accounts::prepare(&changing.sealer, &tenant, &name, &role_arn, &region).await?;
    let mut tx = store.begin().await?;
    let linked = match tx.add_account(&new, now()).await {
        Ok(linked) => linked,
        Err(StoreError::Duplicate(_)) => bail!(
            "tenant '{}' already has an account named '{name}': choose another with --name",
            tenant.name
        ),
        Err(other) => return Err(other.into()),
    };
    changing
        .audit
        .commit_with(
            tx,
            &operator_entry(
                Outcome::AccountLinked,
                Some(&tenant.id),
                None,
                format!("Linked account {} to {}", linked.name, tenant.name),
            ),
        )
        .await?;
    let setup = Setup {
        region: &linked.region,
        external_id: &external_id,
        trusted: &trusted,
        role_arn: &role_arn,
        template: template.as_ref(),
    };
    let report = if args.check {
        Some(check(&changing, &linked).await?)
    } else {
        None
    };
    if args.out.json {
        let mut value = account_json(&linked, &tenant.name, Some(role_arn.account()));
        extend(
            &mut value,
            json!({
                "external_id": external_id.expose(),
                "template_parameters": setup.parameters(),
                "cli_command": setup.cli_command(),
                "quick_create_url": setup.quick_create(),
            }),
        );
        if let Some(report) = &report {
            value["check"] = report_json(report);
        }
        print_json(&value)?;
    } else {
        println!(
            "Linked account '{}' ({}) to tenant '{}', default region {}.\n",
            linked.name,
            role_arn.account(),
            tenant.name,
            linked.region
        );
        setup.print();
        if let Some(report) = &report {
            println!();
            print_report_text(&linked, report);
        }
    }
    match report {
        Some(report) if !report.healthy() => bail!(
            "the link to '{}' is stored, but its role is not set up as voxgate needs (see above)",
            linked.name
        ),
        _ => Ok(()),
    }
}

/// An account of `tenant` by that name (regardless of case), if any.
async fn same_name(
    store: &dyn Store,
    tenant: &Tenant,
    name: &str,
) -> anyhow::Result<Option<LinkedAccount>> {
    Ok(store
        .accounts(Some(&tenant.id))
        .await?
        .into_iter()
        .find(|a| a.name.eq_ignore_ascii_case(name)))
}

/// An account by name (within `tenant` if given); names must be unambiguous.
async fn find_account(
    store: &dyn Store,
    name: &str,
    tenant: Option<&str>,
) -> anyhow::Result<(LinkedAccount, Tenant)> {
    let tenant_id = match tenant {
        Some(tenant) => Some(find_tenant(store, tenant).await?.id),
        None => None,
    };
    let mut matches: Vec<_> = store
        .accounts(tenant_id.as_ref())
        .await?
        .into_iter()
        .filter(|a| a.name.eq_ignore_ascii_case(name.trim()) || a.id.as_str() == name.trim())
        .collect();
    let account = match matches.len() {
        1 => matches.remove(0),
        0 => bail!(
            "there is no linked account '{}': list them with `voxgate account list`",
            name.trim()
        ),
        _ => bail!(
            "several tenants have an account '{}': add --tenant",
            name.trim()
        ),
    };
    let Some(tenant) = store.tenant(&account.tenant_id).await? else {
        bail!("the tenant of account '{}' no longer exists", account.name);
    };
    Ok((account, tenant))
}

async fn show(
    name: &str,
    tenant: Option<&str>,
    customer: &CustomerArgs,
    sealing: &SealingArgs,
    db: &DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let trusted = trusted_principal(customer)?;
    let template = template_url(customer)?;
    let changing = Changing::open(db, sealing, false).await?;
    let (account, tenant) = find_account(changing.store.as_ref(), name, tenant).await?;
    let (role_arn, external_id) = crate::accounts::open_secrets(&changing.sealer, &account)
        .await
        .with_context(|| format!("cannot open the sealed details of '{}'", account.name))?;
    // Showing a secret again is a decision like any other: recorded, or not done.
    changing
        .audit
        .append(&operator_entry(
            Outcome::AccountShown,
            Some(&tenant.id),
            None,
            format!("Showed the ExternalId of account {}", account.name),
        ))
        .await?;
    let setup = Setup {
        region: &account.region,
        external_id: &external_id,
        trusted: &trusted,
        role_arn: &role_arn,
        template: template.as_ref(),
    };
    if out.json {
        let mut value = account_json(&account, &tenant.name, Some(role_arn.account()));
        extend(
            &mut value,
            json!({
                "role_arn": role_arn.as_str(),
                "external_id": external_id.expose(),
                "template_parameters": setup.parameters(),
                "cli_command": setup.cli_command(),
                "quick_create_url": setup.quick_create(),
            }),
        );
        return print_json(&value);
    }
    println!(
        "Account '{}' ({}) of tenant '{}', default region {}, linked {}.",
        account.name,
        role_arn.account(),
        tenant.name,
        account.region,
        when(account.created_at)
    );
    println!("Role: {}\n", role_arn.as_str());
    setup.print();
    Ok(())
}

/// What the customer needs to create the role.
struct Setup<'a> {
    region: &'a str,
    external_id: &'a ExternalId,
    trusted: &'a str,
    role_arn: &'a RoleArn,
    template: Option<&'a url::Url>,
}

impl Setup<'_> {
    /// The template's parameters, in its order.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ExternalId", self.external_id.expose().to_owned()),
            ("VoxgatePrincipal", self.trusted.to_owned()),
            ("RoleName", self.role_arn.name().to_owned()),
            ("RolePath", self.role_arn.path()),
        ]
    }

    fn parameters(&self) -> serde_json::Value {
        self.pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    fn cli_command(&self) -> String {
        let parameters: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(k, v)| format!("ParameterKey={k},ParameterValue={v}"))
            .collect();
        format!(
            "aws cloudformation create-stack --stack-name voxgate-access --region {} \
             --capabilities CAPABILITY_NAMED_IAM --template-body file://deploy/customer-role.yaml \
             --parameters {}",
            self.region,
            parameters.join(" ")
        )
    }

    fn quick_create(&self) -> Option<String> {
        let template = self.template?;
        let mut url = url::Url::parse("https://console.aws.amazon.com/cloudformation/home")
            .expect("a constant URL");
        url.query_pairs_mut().append_pair("region", self.region);
        let mut fragment = url::form_urlencoded::Serializer::new(String::new());
        fragment
            .append_pair("templateURL", template.as_str())
            .append_pair("stackName", "voxgate-access");
        for (key, value) in self.pairs() {
            fragment.append_pair(&format!("param_{key}"), &value);
        }
        url.set_fragment(Some(&format!("/stacks/quickcreate?{}", fragment.finish())));
        Some(url.to_string())
    }

    fn print(&self) {
        println!("The customer creates the role in their account with deploy/customer-role.yaml:");
        let width = self.pairs().iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
        for (key, value) in self.pairs() {
            println!("  {key:<width$}{value}");
        }
        println!("\nWith the AWS CLI:\n  {}\n", self.cli_command());
        match self.quick_create() {
            Some(url) => println!("Or in the AWS console (quick-create):\n  {url}"),
            None => println!(
                "For a one-click console link, host deploy/customer-role.yaml over HTTPS and set \
                 VOXGATE_ROLE_TEMPLATE_URL."
            ),
        }
    }
}

/// Adds the fields of `more` (an object) to `value` (an object).
fn extend(value: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(value), serde_json::Value::Object(more)) = (value.as_object_mut(), more) {
        value.extend(more);
    }
}

fn account_json(
    account: &LinkedAccount,
    tenant: &str,
    aws_account_id: Option<&str>,
) -> serde_json::Value {
    json!({
        "id": account.id,
        "account": account.name,
        "tenant": tenant,
        "tenant_id": account.tenant_id,
        "aws_account_id": aws_account_id,
        "region": account.region,
        "created_at": rfc3339(account.created_at),
    })
}

/// Assumes the account's role as the operator's check would, with the same settings as
/// `serve` (voxgate's own AWS identity from the environment).
async fn check(changing: &Changing, account: &LinkedAccount) -> anyhow::Result<LinkReport> {
    // Taking the customer's role is recorded before it happens (or does not happen).
    changing
        .audit
        .append(&operator_entry(
            Outcome::AccountChecked,
            Some(&account.tenant_id),
            None,
            format!("Checked the link of account {}", account.name),
        ))
        .await?;
    let aws = crate::cloud::load_sdk_config().await;
    verbose(format_args!(
        "assuming the role of '{}' with voxgate's own AWS identity",
        account.name
    ));
    let broker = crate::cloud::broker::Broker::new(
        aws,
        Arc::clone(&changing.sealer),
        Arc::new(crate::clock::SystemClock),
        crate::cloud::broker::MIN_SESSION,
    )?;
    // CloudTrail names the check as its source identity.
    let who = crate::store::User {
        id: crate::store::UserId("operator-check".into()),
        tenant_id: account.tenant_id.clone(),
        name: "voxgate-link-check".into(),
        alexa_user_id: None,
        oauth_subject: None,
        created_at: now(),
    };
    Ok(crate::accounts::check(&broker, account, &who).await)
}

fn finding_text(finding: &Finding) -> String {
    match finding {
        Finding::Allowed => "allowed".into(),
        Finding::Denied => "refused".into(),
        Finding::Unclear(why) => format!("could not tell ({why})"),
    }
}

fn report_json(report: &LinkReport) -> serde_json::Value {
    json!({
        "healthy": report.healthy(),
        "assumed": report.assume_error.is_none(),
        "assume_error": report.assume_error,
        "probes": report.probes.iter().map(|p| json!({
            "what": p.what,
            "action": p.action,
            "needed": p.needed,
            "finding": finding_text(&p.finding),
            "as_expected": p.as_expected(),
        })).collect::<Vec<_>>(),
    })
}

fn print_report_text(account: &LinkedAccount, report: &LinkReport) {
    if let Some(error) = &report.assume_error {
        println!(
            "voxgate could not assume the role of '{}': {error}. Has the customer created the \
             stack with the parameters above?",
            account.name
        );
        return;
    }
    println!("voxgate assumed the role of '{}'.", account.name);
    let mut table = Table::new(&["CHECK", "ACTION", "RESULT", "VERDICT"]);
    for probe in &report.probes {
        let verdict = match (probe.as_expected(), probe.needed) {
            (true, _) => "ok".to_owned(),
            (false, true) => "voxgate needs this".to_owned(),
            (false, false) => "the role allows more than voxgate needs".to_owned(),
        };
        table.row(vec![
            probe.what.to_owned(),
            probe.action.to_owned(),
            finding_text(&probe.finding),
            verdict,
        ]);
    }
    print!("{table}");
}

fn print_report(
    account: &LinkedAccount,
    tenant: &Tenant,
    report: &LinkReport,
    out: Output,
) -> anyhow::Result<()> {
    if out.json {
        let mut value = account_json(account, &tenant.name, report.aws_account.as_deref());
        extend(&mut value, report_json(report));
        print_json(&value)?;
    } else {
        print_report_text(account, report);
    }
    if report.healthy() {
        Ok(())
    } else {
        bail!(
            "the role of '{}' is not set up as voxgate needs it",
            account.name
        )
    }
}

async fn list(
    tenant: Option<String>,
    sealing: &SealingArgs,
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
    // The AWS account id is part of the sealed role ARN: opened here, never stored in clear.
    let sealer = if accounts.is_empty() {
        None
    } else {
        Some(super::sealer(sealing).await?)
    };
    let mut aws_ids = Vec::new();
    for account in &accounts {
        let id = match &sealer {
            Some(sealer) => crate::accounts::open_secrets(sealer, account)
                .await
                .map(|(arn, _)| arn.account().to_owned())
                .ok(),
            None => None,
        };
        aws_ids.push(id);
    }
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
            .zip(&aws_ids)
            .map(|(a, id)| account_json(a, &tenant_name(&a.tenant_id), id.as_deref()))
            .collect();
        return print_json(&json!(rows));
    }
    if accounts.is_empty() {
        println!("No linked accounts. Link one with `voxgate account link`.");
        return Ok(());
    }
    let mut table = Table::new(&["TENANT", "ACCOUNT", "AWS ACCOUNT", "REGION", "ID", "LINKED"]);
    for (a, aws_id) in accounts.iter().zip(&aws_ids) {
        table.row(vec![
            tenant_name(&a.tenant_id),
            a.name.clone(),
            aws_id.clone().unwrap_or_else(|| "(cannot open)".into()),
            a.region.clone(),
            a.id.as_str().to_owned(),
            when(a.created_at),
        ]);
    }
    print!("{table}");
    Ok(())
}

async fn unlink(
    name: &str,
    tenant: Option<&str>,
    sealing: &SealingArgs,
    db: &DatabaseArgs,
    out: Output,
) -> anyhow::Result<()> {
    let changing = Changing::open(db, sealing, false).await?;
    let store = changing.store.as_ref();
    let (account, tenant) = find_account(store, name, tenant).await?;
    let mut tx = store.begin().await?;
    match tx.unlink_account(&account.id, now()).await? {
        Removal::Removed => {}
        Removal::Busy { .. } => bail!(
            "an operation on '{}' is waiting for a code or running: wait until it ends (or deny \
             it in the app), then unlink it; nothing was changed",
            account.name
        ),
        Removal::Missing | Removal::NotEmpty { .. } => {
            bail!("account '{}' was unlinked meanwhile", account.name)
        }
    }
    changing
        .audit
        .commit_with(
            tx,
            &operator_entry(
                Outcome::AccountUnlinked,
                Some(&tenant.id),
                None,
                format!("Unlinked account {} of {}", account.name, tenant.name),
            ),
        )
        .await?;
    if out.json {
        return print_json(&json!({
            "id": account.id,
            "account": account.name,
            "tenant": tenant.name,
            "tenant_id": tenant.id,
            "removed": true,
        }));
    }
    println!(
        "Unlinked account '{}' of tenant '{}': voxgate no longer uses it and has forgotten its \
         role ARN and ExternalId. The customer can now delete the voxgate-access stack.",
        account.name, tenant.name
    );
    Ok(())
}
