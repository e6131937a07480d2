//! Systems Manager: "is the SSM agent running on the web server" (read), "run the health
//! check on the web server" (critical: SendCommand of the `voxgate-HealthCheck` document,
//! which `deploy/customer-role.yaml` creates with a fixed, read-only script, on one
//! managed instance), and "how did the health check go on the web server" (read: the
//! latest such command's status).

use aws_sdk_ssm::types::{InstanceInformationStringFilter, PingStatus};

use super::ask::{Answer, Ask, Trouble};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, REGION, Report, sha256_hex,
};
use super::instances::{self, INSTANCE};
use super::reply::Reply;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::arn::Region;
use crate::cloud::broker::AwsSession;

/// The kind health checks are stored under.
pub const KIND: &str = "ssm-health-check";

/// The document the health check runs: created by the customer's CloudFormation stack
/// (`deploy/customer-role.yaml`), so its script is the customer's to read and never comes
/// from voxgate.
pub const HEALTH_CHECK_DOCUMENT: &str = "voxgate-HealthCheck";

/// The SSM family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "ssm.agent",
        intent: "SsmAgentStatusIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances", "ssm:DescribeInstanceInformation"],
    },
    Declaration {
        name: "ssm.health-check",
        intent: "RunHealthCheckIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Critical,
        iam_actions: &[
            "ec2:DescribeInstances",
            "ssm:DescribeDocument",
            "ssm:SendCommand",
        ],
    },
    Declaration {
        name: "ssm.health-check-result",
        intent: "HealthCheckResultIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances", "ssm:ListCommands"],
    },
];

fn client(session: &AwsSession, region: &str, change: bool) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&session.config(Some(region), change))
}

/// What SSM knows of an instance's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not registered with SSM: no agent, no role, or no way to reach SSM.
    NotRegistered,
    /// Online, with its version.
    Online(Option<String>),
    /// Registered but not answering ("ConnectionLost", "Inactive").
    Lost(String),
}

/// The agent of `instance_id`.
pub async fn agent(
    session: &AwsSession,
    region: &str,
    instance_id: &str,
) -> Result<AgentState, OpsError> {
    let filter = InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .values(instance_id)
        .build()
        .map_err(|_| OpsError::Aws {
            code: "Unsent".into(),
            message: "the filter could not be built".into(),
        })?;
    let answer = client(session, region, false)
        .describe_instance_information()
        .filters(filter)
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    let Some(info) = answer
        .instance_information_list()
        .iter()
        .find(|i| i.instance_id() == Some(instance_id))
    else {
        return Ok(AgentState::NotRegistered);
    };
    Ok(match info.ping_status() {
        Some(PingStatus::Online) => AgentState::Online(info.agent_version().map(str::to_owned)),
        Some(other) => AgentState::Lost(other.as_str().to_owned()),
        None => AgentState::Lost("Unknown".to_owned()),
    })
}

/// The latest health check sent to `instance_id`: its command id and status.
pub async fn latest_health_check(
    session: &AwsSession,
    region: &str,
    instance_id: &str,
) -> Result<Option<(String, String)>, OpsError> {
    let answer = client(session, region, false)
        .list_commands()
        .instance_id(instance_id)
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    Ok(answer
        .commands()
        .iter()
        .filter(|c| c.document_name() == Some(HEALTH_CHECK_DOCUMENT))
        .max_by_key(|c| {
            c.requested_date_time()
                .map(|t| (t.secs(), t.subsec_nanos()))
        })
        .map(|c| {
            (
                c.command_id().unwrap_or_default().to_owned(),
                c.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        }))
}

/// The SSM family.
#[derive(Debug)]
pub struct Ssm;

#[async_trait::async_trait]
impl Family for Ssm {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let result = match declaration.name {
            "ssm.health-check" => health_check(ask).await,
            "ssm.health-check-result" => result(ask).await,
            _ => agent_status(ask).await,
        };
        result.unwrap_or_else(|answer| answer)
    }
}

/// A session limited to `policy` in the account of `found`, or the answer saying why not.
async fn session_for(
    ask: &Ask<'_>,
    found: &instances::Found,
    policy: &SessionPolicy,
) -> Result<AwsSession, Answer> {
    ask.sessions
        .session(&found.account, policy)
        .await
        .map_err(|e| Answer::Trouble(Box::new(found.account.clone()), Trouble::Session(e)))
}

/// "is the SSM agent running on the web server".
async fn agent_status(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let found = instances::named(ask).await?;
    let policy = SessionPolicy::allow(&["ssm:DescribeInstanceInformation"], &["*"]);
    let session = session_for(ask, &found, &policy).await?;
    let state = agent(&session, &found.region, &found.instance.id)
        .await
        .map_err(|e| Answer::Trouble(Box::new(found.account.clone()), e.into()))?;
    let card = format!(
        "{} ({}): SSM agent {}",
        found.instance.label(),
        found.instance.id,
        match &state {
            AgentState::NotRegistered => "not registered".to_owned(),
            AgentState::Online(version) => format!(
                "online{}",
                version
                    .as_ref()
                    .map(|v| format!(", version {v}"))
                    .unwrap_or_default()
            ),
            AgentState::Lost(status) => status.clone(),
        }
    );
    Ok(Answer::Say {
        reply: Reply::SsmAgent {
            name: found.instance.label().to_owned(),
            state,
        },
        card: Some(card),
    })
}

/// "how did the health check go on the web server".
async fn result(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let found = instances::named(ask).await?;
    let policy = SessionPolicy::allow(&["ssm:ListCommands"], &["*"]);
    let session = session_for(ask, &found, &policy).await?;
    let latest = latest_health_check(&session, &found.region, &found.instance.id)
        .await
        .map_err(|e| Answer::Trouble(Box::new(found.account.clone()), e.into()))?;
    let card = latest.as_ref().map(|(id, status)| {
        format!(
            "{} ({}): health check command {id}, {status}",
            found.instance.label(),
            found.instance.id
        )
    });
    Ok(Answer::Say {
        reply: Reply::HealthCheckStatus {
            name: found.instance.label().to_owned(),
            status: latest.map(|(_, status)| status),
        },
        card,
    })
}

/// The default version of `document` in `region`, which the approval pins: a later
/// change of the document makes a new version, never a different script under the code
/// already shown. `None` when the account has no such document.
pub async fn document_version(
    session: &AwsSession,
    region: &str,
    document: &str,
) -> Result<Option<String>, OpsError> {
    match client(session, region, false)
        .describe_document()
        .name(document)
        .send()
        .await
    {
        Ok(answer) => Ok(answer
            .document()
            .and_then(|d| d.default_version().or(d.document_version()))
            .map(str::to_owned)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_invalid_document()) =>
        {
            Ok(None)
        }
        Err(error) => Err(OpsError::from_sdk(error)),
    }
}

/// "run the health check on the web server": a managed instance only, and the document's
/// version of this moment.
async fn health_check(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let found = instances::named(ask).await?;
    let policy = SessionPolicy::allow(&["ssm:DescribeDocument"], &["*"]);
    let session = session_for(ask, &found, &policy).await?;
    let version = document_version(&session, &found.region, HEALTH_CHECK_DOCUMENT)
        .await
        .map_err(|e| Answer::Trouble(Box::new(found.account.clone()), e.into()))?;
    let Some(document_version) = version else {
        return Ok(Answer::say(Reply::NoHealthCheckDocument {
            account: found.account.name.clone(),
            region: found.region.clone(),
        }));
    };
    let op = HealthCheckOperation {
        account_id: found.account.id.as_str().to_owned(),
        account_name: found.account.name.clone(),
        region: found.region.clone(),
        instance_id: found.instance.id.clone(),
        instance_name: found.instance.label().to_owned(),
        document: HEALTH_CHECK_DOCUMENT.to_owned(),
        document_version,
    };
    let name = op.instance_name.clone();
    Ok(ask.hold_if_managed(
        ask.managed.marks(&found.instance.tags),
        &name,
        Operation::HealthCheck(op),
    ))
}

/// Running the health-check document on one managed instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckOperation {
    /// voxgate's id of the linked account.
    pub account_id: String,
    /// Its label ("prod").
    pub account_name: String,
    /// Region.
    pub region: String,
    /// `i-…`.
    pub instance_id: String,
    /// The instance's name, as people call it.
    pub instance_name: String,
    /// The SSM document it runs.
    pub document: String,
    /// The document's version it runs (pinned when the operation was held).
    pub document_version: String,
}

/// What the health check sent: the command id and its first status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSent {
    /// The operation.
    pub op: HealthCheckOperation,
    /// SSM's command id.
    pub command_id: String,
    /// Its status when SSM took it ("Pending").
    pub status: String,
}

#[async_trait::async_trait]
impl Critical for HealthCheckOperation {
    super::catalog::critical_identity!(KIND);

    /// "Run the health check on web-1 in prod, Ireland".
    fn summary(&self) -> String {
        format!(
            "Run the health check on {} in {}, {}",
            self.instance_name,
            self.account_name,
            Region::words(&self.region)
        )
    }

    fn well_formed(&self) -> bool {
        super::catalog::region_code(&self.region)
            && super::catalog::aws_id(&self.instance_id, "i-")
            && self.document == HEALTH_CHECK_DOCUMENT
            && !self.document_version.is_empty()
            && self
                .document_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
    }

    fn digest(&self) -> String {
        sha256_hex(&format!(
            "voxgate-ssm-command-v2\naccount={}\nregion={}\ninstance={}\ndocument={}\n\
             version={}\n",
            self.account_id, self.region, self.instance_id, self.document, self.document_version
        ))
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Action", "Run command".to_owned()),
            (
                "Instance",
                format!("{} ({})", self.instance_name, self.instance_id),
            ),
            (
                "Document",
                format!("{} (version {})", self.document, self.document_version),
            ),
        ]
    }

    fn guard_policy(&self) -> SessionPolicy {
        instances::list_instances_policy()
    }

    /// SendCommand of exactly this document, on exactly this instance and only while it
    /// carries the managed tag.
    fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        SessionPolicy::allow(
            &["ssm:SendCommand"],
            &[&format!(
                "arn:aws:ssm:{}:{aws_account}:document/{}",
                self.region, self.document
            )],
        )
        .and(SessionPolicy::allow_tagged(
            &["ssm:SendCommand"],
            &[&format!(
                "arn:aws:ec2:{}:{aws_account}:instance/{}",
                self.region, self.instance_id
            )],
            &managed.key,
            &managed.value,
        ))
    }

    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        _now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        Ok(
            match instances::describe_instance(&read.ec2(Some(&self.region)), &self.instance_id)
                .await?
            {
                Some(instance) if managed.marks(&instance.tags) => Guard::Clear,
                _ => Guard::NotManaged,
            },
        )
    }

    async fn execute(
        &self,
        session: &AwsSession,
        _deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        use aws_sdk_ssm::operation::RequestId as _;
        let sent = client(session, &self.region, true)
            .send_command()
            .document_name(&self.document)
            .document_version(&self.document_version)
            .instance_ids(&self.instance_id)
            .comment("Health check approved by voice through voxgate")
            .send()
            .await
            .map_err(OpsError::from_sdk_change)?;
        let command = sent.command();
        Ok(Done {
            request_id: sent.request_id().map(str::to_owned),
            report: Report::HealthCheck(HealthCheckSent {
                op: self.clone(),
                command_id: command
                    .and_then(|c| c.command_id())
                    .unwrap_or_default()
                    .to_owned(),
                status: command
                    .and_then(|c| c.status())
                    .map_or_else(|| "Pending".to_owned(), |s| s.as_str().to_owned()),
            }),
        })
    }
}

/// One health check, for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    vec![Operation::HealthCheck(tests::op())]
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = tests::op();
    let with = |f: &dyn Fn(&mut HealthCheckOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::HealthCheck(op)
    };
    vec![
        (
            Operation::HealthCheck(base.clone()),
            with(&|op| op.document = "AWS-RunShellScript".into()),
            Some(with(&|op| op.instance_name = "web-one".into())),
        ),
        (
            Operation::HealthCheck(base.clone()),
            with(&|op| op.instance_id.push('0')),
            None,
        ),
        (
            Operation::HealthCheck(base.clone()),
            with(&|op| op.region = "eu-west-2".into()),
            None,
        ),
        (
            Operation::HealthCheck(base.clone()),
            with(&|op| op.document_version = "2".into()),
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn op() -> HealthCheckOperation {
        HealthCheckOperation {
            account_id: "a_1".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            instance_id: "i-0abc1234567890def".into(),
            instance_name: "web-1".into(),
            document: HEALTH_CHECK_DOCUMENT.into(),
            document_version: "1".into(),
        }
    }

    #[test]
    fn the_session_policy_names_the_document_and_the_tagged_instance() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let doc: serde_json::Value =
            serde_json::from_str(&op().policy("111122223333", &tag).to_json()).expect("json");
        let statements = doc["Statement"].as_array().expect("statements");
        assert_eq!(statements.len(), 2, "{doc}");
        assert_eq!(
            statements[0]["Resource"],
            serde_json::json!(["arn:aws:ssm:eu-west-1:111122223333:document/voxgate-HealthCheck"])
        );
        assert_eq!(
            statements[1]["Condition"]["StringEquals"]["aws:ResourceTag/voxgate:managed"],
            "true"
        );
    }
}
