//! Instances: list and status (read), start, stop and reboot (critical). Read-only calls
//! answer at once; their session policy names only the Describe actions they call.

use aws_sdk_ec2::types::{Filter, InstanceStateName};

#[cfg(test)]
use super::catalog::Operation;
use super::catalog::{Criticality, Declaration, Done, Guard, Report, sha256_hex};
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::broker::AwsSession;

/// The kind instance operations are stored under.
pub const KIND: &str = "ec2-instance";

/// The instance family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "instances.list",
        intent: "ListInstancesIntent",
        slots: &["region"],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances"],
    },
    Declaration {
        name: "instances.status",
        intent: "InstanceStatusIntent",
        slots: &["instance", "region"],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances"],
    },
    Declaration {
        name: "instances.start",
        intent: "StartInstanceIntent",
        slots: &["instance", "region"],
        criticality: Criticality::Critical,
        iam_actions: &["ec2:DescribeInstances", "ec2:StartInstances"],
    },
    Declaration {
        name: "instances.stop",
        intent: "StopInstanceIntent",
        slots: &["instance", "region"],
        criticality: Criticality::Critical,
        iam_actions: &["ec2:DescribeInstances", "ec2:StopInstances"],
    },
    Declaration {
        name: "instances.reboot",
        intent: "RebootInstanceIntent",
        slots: &["instance", "region"],
        criticality: Criticality::Critical,
        iam_actions: &["ec2:DescribeInstances", "ec2:RebootInstances"],
    },
];

/// The session policy of [`list_instances`]. Describe calls have no resource-level
/// permissions, hence `*`.
pub fn list_instances_policy() -> SessionPolicy {
    SessionPolicy::allow(&["ec2:DescribeInstances"], &["*"])
}

/// Lifecycle state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// Terminating.
    ShuttingDown,
    /// Gone.
    Terminated,
    /// A state this version does not know.
    Unknown,
}

impl InstanceState {
    /// The state as AWS names it, e.g. `running`, `shutting-down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Unknown => "unknown",
        }
    }
}

impl From<Option<&InstanceStateName>> for InstanceState {
    fn from(state: Option<&InstanceStateName>) -> Self {
        match state {
            Some(InstanceStateName::Pending) => Self::Pending,
            Some(InstanceStateName::Running) => Self::Running,
            Some(InstanceStateName::Stopping) => Self::Stopping,
            Some(InstanceStateName::Stopped) => Self::Stopped,
            Some(InstanceStateName::ShuttingDown) => Self::ShuttingDown,
            Some(InstanceStateName::Terminated) => Self::Terminated,
            _ => Self::Unknown,
        }
    }
}

/// What voxgate needs to know of an instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceInfo {
    /// `i-…`.
    pub id: String,
    /// The `Name` tag, if any.
    pub name: Option<String>,
    /// State.
    pub state: InstanceState,
    /// e.g. `t3.micro`.
    pub instance_type: String,
    /// All tags.
    pub tags: Vec<(String, String)>,
}

impl InstanceInfo {
    /// The name people use: the `Name` tag, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Every instance that is not terminated, in the client's region.
pub async fn list_instances(client: &aws_sdk_ec2::Client) -> Result<Vec<InstanceInfo>, OpsError> {
    let live = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped", "shutting-down"]
                .map(String::from)
                .to_vec(),
        ))
        .build();
    let mut instances = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_instances()
            .filters(live.clone())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for reservation in page.reservations() {
            for instance in reservation.instances() {
                let tags: Vec<(String, String)> = instance
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                    .collect();
                instances.push(InstanceInfo {
                    id: instance.instance_id().unwrap_or_default().to_owned(),
                    name: tags
                        .iter()
                        .find(|(k, _)| k == "Name")
                        .map(|(_, v)| v.clone()),
                    state: instance.state().and_then(|s| s.name()).into(),
                    instance_type: instance
                        .instance_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    tags,
                });
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    instances.sort_by(|a, b| a.label().cmp(b.label()));
    Ok(instances)
}

/// A state change of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// StartInstances.
    Start,
    /// StopInstances.
    Stop,
    /// RebootInstances.
    Reboot,
}

impl Action {
    /// The IAM action it needs.
    pub fn iam_action(self) -> &'static str {
        match self {
            Self::Start => "ec2:StartInstances",
            Self::Stop => "ec2:StopInstances",
            Self::Reboot => "ec2:RebootInstances",
        }
    }

    /// The verb that opens its summary.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::Reboot => "Reboot",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
        }
    }

    /// Whether it would change nothing on an instance in `state` (starting a running
    /// instance, stopping a stopped one): such an operation is not held.
    pub fn would_do_nothing(self, state: InstanceState) -> bool {
        matches!(
            (self, state),
            (Self::Start, InstanceState::Running | InstanceState::Pending)
                | (Self::Stop, InstanceState::Stopped | InstanceState::Stopping)
                | (
                    Self::Reboot,
                    InstanceState::Stopped | InstanceState::Stopping
                )
        )
    }
}

/// A critical operation on one instance, with every parameter that defines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceOperation {
    /// What to do.
    pub action: Action,
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
}

impl InstanceOperation {
    /// What the person hears and the app shows, e.g. "Stop instance web-1 (i-0abc12…) in
    /// account prod, eu-west-1". The full instance id is in the digest.
    pub fn summary(&self) -> String {
        let short_id: String = self.instance_id.chars().take(8).collect();
        let ellipsis = if self.instance_id.chars().count() > 8 {
            "…"
        } else {
            ""
        };
        format!(
            "{} instance {} ({short_id}{ellipsis}) in account {}, {}",
            self.action.verb(),
            self.instance_name,
            self.account_name,
            self.region
        )
    }

    /// SHA-256 (hex) over a canonical encoding of the exact parameters. Any change of
    /// action, account, region or instance changes it, and with it the one-time code.
    pub fn digest(&self) -> String {
        let canonical = format!(
            "voxgate-op-v1\naction={}\naccount={}\nregion={}\ninstance={}\n",
            self.action.name(),
            self.account_id,
            self.region,
            self.instance_id
        );
        sha256_hex(&canonical)
    }

    /// The instance's ARN in `aws_account` (the 12-digit id).
    pub fn instance_arn(&self, aws_account: &str) -> String {
        format!(
            "arn:aws:ec2:{}:{aws_account}:instance/{}",
            self.region, self.instance_id
        )
    }

    /// Exactly this action on exactly this instance, and only while it carries the managed
    /// tag: IAM checks the tag at the moment of the call, not only voxgate before it.
    pub fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        SessionPolicy::allow_tagged(
            &[self.action.iam_action()],
            &[&self.instance_arn(aws_account)],
            &managed.key,
            &managed.value,
        )
    }

    /// The instance must still exist and carry the managed tag.
    pub async fn guard(&self, read: &AwsSession, managed: &ManagedTag) -> Result<Guard, OpsError> {
        Ok(
            match describe_instance(&read.ec2(Some(&self.region)), &self.instance_id).await? {
                Some(instance) if managed.marks(&instance.tags) => Guard::Clear,
                _ => Guard::NotManaged,
            },
        )
    }

    /// Runs it; the AWS request id on success.
    pub async fn execute(&self, session: &AwsSession) -> Result<Done, OpsError> {
        use aws_sdk_ec2::operation::RequestId as _;
        let client = session.ec2_for_change(Some(&self.region));
        let id = self.instance_id.as_str();
        let request_id = match self.action {
            Action::Start => client
                .start_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(OpsError::from_sdk_change)?
                .request_id()
                .map(str::to_owned),
            Action::Stop => client
                .stop_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(OpsError::from_sdk_change)?
                .request_id()
                .map(str::to_owned),
            Action::Reboot => client
                .reboot_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(OpsError::from_sdk_change)?
                .request_id()
                .map(str::to_owned),
        };
        Ok(Done {
            request_id,
            report: Report::Instance(self.clone()),
        })
    }
}

/// One instance by id, if it exists (and is not terminated).
pub async fn describe_instance(
    client: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<Option<InstanceInfo>, OpsError> {
    Ok(list_instances(client)
        .await?
        .into_iter()
        .find(|i| i.id == instance_id))
}

/// One operation of each action, for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    [Action::Start, Action::Stop, Action::Reboot]
        .into_iter()
        .map(|action| {
            Operation::Instance(InstanceOperation {
                action,
                ..tests::op()
            })
        })
        .collect()
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = tests::op();
    let with = |f: &dyn Fn(&mut InstanceOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::Instance(op)
    };
    let relabelled = with(&|op| op.instance_name = "web-one".into());
    let relabelled_account = with(&|op| op.account_name = "production".into());
    vec![
        (
            Operation::Instance(base.clone()),
            with(&|op| op.action = Action::Reboot),
            Some(relabelled),
        ),
        (
            Operation::Instance(base.clone()),
            with(&|op| op.instance_id.push('0')),
            Some(relabelled_account),
        ),
        (
            Operation::Instance(base.clone()),
            with(&|op| op.region = "eu-west-2".into()),
            None,
        ),
        (
            Operation::Instance(base.clone()),
            with(&|op| op.account_id = "a_2".into()),
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn op() -> InstanceOperation {
        InstanceOperation {
            action: Action::Stop,
            account_id: "a_1".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            instance_id: "i-0abc1234567890def".into(),
            instance_name: "web-1".into(),
        }
    }

    #[test]
    fn summary_names_action_instance_account_and_region() {
        assert_eq!(
            op().summary(),
            "Stop instance web-1 (i-0abc12…) in account prod, eu-west-1"
        );
    }

    #[test]
    fn the_session_policy_names_only_the_action_the_instance_and_the_tag() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let doc: serde_json::Value =
            serde_json::from_str(&op().policy("111122223333", &tag).to_json()).expect("json");
        assert_eq!(
            doc["Statement"],
            serde_json::json!([{
                "Effect": "Allow",
                "Action": ["ec2:StopInstances"],
                "Resource": ["arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc1234567890def"],
                "Condition": {"StringEquals": {"aws:ResourceTag/voxgate:managed": "true"}}
            }])
        );
    }
}
