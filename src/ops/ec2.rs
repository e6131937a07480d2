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
