//! Linking a customer's AWS account to a tenant: a fresh ExternalId, role ARN and
//! ExternalId sealed under the tenant's encryption context, stored; opening them again;
//! and checking a link (assume the role once, see what it may and may not do). Shared by
//! the CLI and anything else that links accounts, so these steps exist once.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::arn::{ExternalId, Region, RoleArn};
use crate::cloud::broker::Broker;
use crate::cloud::seal::{Purpose, SealContext, SealError, Sealer};
use crate::store::{
    AccountId, AccountName, InvalidInput, LinkedAccount, NewAccount, Store, StoreError, Tenant,
    User,
};

/// Why linking failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Sealing failed (KMS unreachable, key file unusable).
    #[error("could not seal the account's secrets: {0}")]
    Seal(#[from] SealError),
    /// The store refused (duplicate) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A linked account and the ExternalId the customer must put in their role's trust policy.
#[derive(Debug)]
pub struct Linked {
    /// The stored account (secrets sealed).
    pub account: LinkedAccount,
    /// The ExternalId, to show the operator once.
    pub external_id: ExternalId,
}

/// Links `role_arn` to `tenant` under `name`, with default region `region`.
pub async fn link(
    store: &dyn Store,
    sealer: &Sealer,
    tenant: &Tenant,
    name: &AccountName,
    role_arn: &RoleArn,
    region: &Region,
    now: i64,
) -> Result<Linked, LinkError> {
    let (account, external_id) = prepare(sealer, tenant, name, role_arn, region).await?;
    let account = store.add_account(&account, now).await?;
    Ok(Linked {
        account,
        external_id,
    })
}

/// A new account's record, its secrets sealed, and its fresh ExternalId: for a caller that
/// stores it in its own transaction (with the audit record).
pub async fn prepare(
    sealer: &Sealer,
    tenant: &Tenant,
    name: &AccountName,
    role_arn: &RoleArn,
    region: &Region,
) -> Result<(NewAccount, ExternalId), LinkError> {
    let external_id = ExternalId::generate()?;
    let tenant_key = tenant.id.as_str();
    let id = AccountId::generate();
    let account = NewAccount {
        id: id.clone(),
        tenant_id: tenant.id.clone(),
        name: name.clone(),
        region: region.as_str().to_owned(),
        role_arn: sealer
            .seal(
                role_arn.as_str().as_bytes(),
                &SealContext::new(tenant_key, Purpose::RoleArn, id.as_str()),
            )
            .await?,
        external_id: sealer
            .seal(
                external_id.expose().as_bytes(),
                &SealContext::new(tenant_key, Purpose::ExternalId, id.as_str()),
            )
            .await?,
        external_id_digest: external_id.digest(),
    };
    Ok((account, external_id))
}

/// The role ARN and ExternalId of a linked account, opened (for `voxgate account show`).
pub async fn open_secrets(
    sealer: &Sealer,
    account: &LinkedAccount,
) -> Result<(RoleArn, ExternalId), SealError> {
    let tenant = account.tenant_id.as_str();
    let role_arn = sealer
        .open(
            &account.role_arn,
            &SealContext::new(tenant, Purpose::RoleArn, account.id.as_str()),
        )
        .await?;
    let role_arn =
        RoleArn::parse(&String::from_utf8_lossy(&role_arn)).map_err(|_| SealError::Corrupt)?;
    let external_id = sealer
        .open(
            &account.external_id,
            &SealContext::new(tenant, Purpose::ExternalId, account.id.as_str()),
        )
        .await?;
    let external_id = ExternalId::from_opened(String::from_utf8_lossy(&external_id).into_owned());
    Ok((role_arn, external_id))
}

/// What one probe of a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The role may do it.
    Allowed,
    /// AWS refused it (access denied).
    Denied,
    /// Could not tell (the service answered something else, or could not be reached).
    Unclear(String),
}

/// One thing the check tried.
#[derive(Debug, Clone)]
pub struct Probe {
    /// What it tried, as the operator reads it ("see EC2 instances").
    pub what: &'static str,
    /// The IAM action it exercised.
    pub action: &'static str,
    /// Whether voxgate needs it (`false`: the role should refuse it).
    pub needed: bool,
    /// What AWS said.
    pub finding: Finding,
}

impl Probe {
    /// True when the finding is what a correctly set-up role gives.
    pub fn as_expected(&self) -> bool {
        match self.finding {
            Finding::Allowed => self.needed,
            Finding::Denied => !self.needed,
            Finding::Unclear(_) => false,
        }
    }
}

/// The result of `voxgate account check`: whether the role could be assumed, and what it
/// may and may not do.
#[derive(Debug)]
pub struct LinkReport {
    /// Why the role could not be assumed (the probes were not run).
    pub assume_error: Option<String>,
    /// The AWS account the role is in (when it was assumed).
    pub aws_account: Option<String>,
    /// What each probe found.
    pub probes: Vec<Probe>,
}

impl LinkReport {
    /// True when the role was assumed and every probe found what it should.
    pub fn healthy(&self) -> bool {
        self.assume_error.is_none() && self.probes.iter().all(Probe::as_expected)
    }
}

/// What an AWS error says about a permission.
fn finding_of<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Finding {
    match error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("DryRunOperation" | "NoSuchEntity") => Finding::Allowed,
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "UnauthorizedAccess",
            ) => Finding::Denied,
            Some(code) => Finding::Unclear(code.to_owned()),
            None if service.raw().status().as_u16() == 403 => Finding::Denied,
            None => Finding::Unclear(format!("HTTP {}", service.raw().status().as_u16())),
        },
        SdkError::TimeoutError(_) => Finding::Unclear("no answer in time".into()),
        SdkError::DispatchFailure(_) => Finding::Unclear("could not be reached".into()),
        _ => Finding::Unclear("unreadable answer".into()),
    }
}

fn finding<T, E: ProvideErrorMetadata>(result: Result<T, SdkError<E, HttpResponse>>) -> Finding {
    match result {
        Ok(_) => Finding::Allowed,
        Err(error) => finding_of(&error),
    }
}

/// The actions [`check`] tries, and nothing else.
const PROBED_ACTIONS: &[&str] = &[
    "ec2:DescribeInstances",
    "cloudwatch:DescribeAlarms",
    "cloudfront:ListDistributions",
    "budgets:ViewBudget",
    "iam:GetAccountPasswordPolicy",
    "ec2:TerminateInstances",
];

/// Assumes `account`'s role once (as `who`, with no session policy) and tries a read of
/// each service voxgate uses and one thing the role must refuse (terminating an instance,
/// as a dry run). Nothing is changed.
pub async fn check(broker: &Broker, account: &LinkedAccount, who: &User) -> LinkReport {
    // The session may do only what the probes try; the role's own refusals still show.
    let policy = crate::cloud::policy::SessionPolicy::allow(PROBED_ACTIONS, &["*"]);
    let session = match broker.probe(account, who, &policy).await {
        Ok(session) => session,
        Err(error) => {
            return LinkReport {
                assume_error: Some(error.to_string()),
                aws_account: None,
                probes: Vec::new(),
            };
        }
    };
    let read = session.config(None, false);
    let change = session.config(None, true);
    let ec2 = aws_sdk_ec2::Client::new(&read);
    let ec2_change = aws_sdk_ec2::Client::new(&change);
    let alarms = aws_sdk_cloudwatch::Client::new(&read);
    let cloudfront = aws_sdk_cloudfront::Client::new(&session.config(Some("us-east-1"), false));
    let budgets = aws_sdk_budgets::Client::new(&session.config(Some("us-east-1"), false));
    let iam = aws_sdk_iam::Client::new(&session.config(Some("us-east-1"), false));
    let (instances, alarm_list, distributions, budget_list, password_policy, terminate) = tokio::join!(
        ec2.describe_instances().max_results(5).send(),
        alarms.describe_alarms().max_records(1).send(),
        cloudfront.list_distributions().max_items(1).send(),
        budgets
            .describe_budgets()
            .account_id(session.aws_account())
            .max_results(1)
            .send(),
        iam.get_account_password_policy().send(),
        ec2_change
            .terminate_instances()
            .instance_ids("i-0123456789abcdef0")
            .dry_run(true)
            .send(),
    );
    let probe = |what, action, needed, finding| Probe {
        what,
        action,
        needed,
        finding,
    };
    LinkReport {
        assume_error: None,
        aws_account: Some(session.aws_account().to_owned()),
        probes: vec![
            probe(
                "see EC2 instances",
                "ec2:DescribeInstances",
                true,
                finding(instances),
            ),
            probe(
                "see CloudWatch alarms",
                "cloudwatch:DescribeAlarms",
                true,
                finding(alarm_list),
            ),
            probe(
                "see CloudFront distributions",
                "cloudfront:ListDistributions",
                true,
                finding(distributions),
            ),
            probe(
                "see budgets",
                "budgets:ViewBudget",
                true,
                finding(budget_list),
            ),
            probe(
                "read the IAM password policy",
                "iam:GetAccountPasswordPolicy",
                true,
                finding(password_policy),
            ),
            probe(
                "terminate instances",
                "ec2:TerminateInstances",
                false,
                finding(terminate),
            ),
        ],
    }
}
