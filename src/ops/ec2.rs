//! EC2 operations. Read-only ones answer at once; their session policy names only the
//! Describe actions they call.

use aws_sdk_ec2::types::{Filter, InstanceStateName};

use super::{OpsError, SessionPolicy};

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
}

/// The tag that marks instances voxgate may change (`--managed-tag KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

impl ManagedTag {
    /// Parses `KEY=VALUE`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            }),
            _ => Err(format!(
                "'{raw}' is not KEY=VALUE: set --managed-tag (VOXGATE_MANAGED_TAG) like voxgate:managed=true"
            )),
        }
    }

    /// Whether `instance` carries this tag.
    pub fn marks(&self, instance: &InstanceInfo) -> bool {
        instance
            .tags
            .iter()
            .any(|(k, v)| *k == self.key && *v == self.value)
    }
}

impl std::fmt::Display for ManagedTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A critical operation on one instance, with every parameter that defines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
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

    /// Runs it; the AWS request id on success.
    pub async fn execute(&self, client: &aws_sdk_ec2::Client) -> Result<Option<String>, OpsError> {
        use aws_sdk_ec2::operation::RequestId as _;
        let id = self.instance_id.as_str();
        Ok(match self.action {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> InstanceOperation {
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
    fn any_change_of_parameters_changes_the_digest() {
        let base = op().digest();
        let mut other = op();
        other.action = Action::Reboot;
        assert_ne!(other.digest(), base);
        let mut other = op();
        other.instance_id.push('0');
        assert_ne!(other.digest(), base);
        let mut other = op();
        other.region = "eu-west-2".into();
        assert_ne!(other.digest(), base);
        let mut other = op();
        other.account_id = "a_2".into();
        assert_ne!(other.digest(), base);
        // Labels are for people; they do not change what runs.
        let mut renamed = op();
        renamed.instance_name = "web-one".into();
        assert_eq!(renamed.digest(), base);
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

    #[test]
    fn managed_tags_are_parsed_and_matched() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("ok");
        let mut instance = InstanceInfo {
            id: "i-1".into(),
            name: None,
            state: InstanceState::Running,
            instance_type: "t3.micro".into(),
            tags: vec![("voxgate:managed".into(), "false".into())],
        };
        assert!(!tag.marks(&instance));
        instance
            .tags
            .push(("voxgate:managed".into(), "true".into()));
        assert!(tag.marks(&instance));
        assert!(ManagedTag::parse("nokey").is_err());
        assert!(ManagedTag::parse("=x").is_err());
    }
}
