//! Instances: list and status (read), start, stop and reboot (critical). Read-only calls
//! answer at once; their session policy names only the Describe actions they call.

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use serde_json::{Value, json};

use super::ask::{Answer, Ask, Reached, answered, card_section};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, REGION, Report, SlotSpec,
    sha256_hex,
};
use super::names::{self, Match};
use super::reply::Reply;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::arn::Region;
use crate::cloud::broker::AwsSession;
use crate::store::LinkedAccount;

/// The kind instance operations are stored under.
pub const KIND: &str = "ec2-instance";

/// The slot naming an instance ("the web server").
pub const INSTANCE_SLOT: &str = "instance";

/// The instance slot.
pub const INSTANCE: SlotSpec = SlotSpec {
    name: INSTANCE_SLOT,
    slot_type: "INSTANCE_NAME",
};

/// The instance family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "instances.list",
        intent: "ListInstancesIntent",
        slots: &[REGION],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances"],
    },
    Declaration {
        name: "instances.status",
        intent: "InstanceStatusIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Read,
        iam_actions: &["ec2:DescribeInstances"],
    },
    Declaration {
        name: "instances.start",
        intent: "StartInstanceIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Critical,
        iam_actions: &["ec2:DescribeInstances", "ec2:StartInstances"],
    },
    Declaration {
        name: "instances.stop",
        intent: "StopInstanceIntent",
        slots: &[INSTANCE, REGION],
        criticality: Criticality::Critical,
        iam_actions: &["ec2:DescribeInstances", "ec2:StopInstances"],
    },
    Declaration {
        name: "instances.reboot",
        intent: "RebootInstanceIntent",
        slots: &[INSTANCE, REGION],
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
    /// What the person hears and the app shows, e.g. "Stop web-1 in prod, Ireland". The
    /// instance id is in the details and the digest, never in speech.
    pub fn summary(&self) -> String {
        format!(
            "{} {} in {}, {}",
            self.action.verb(),
            self.instance_name,
            self.account_name,
            Region::words(&self.region)
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

/// The instances of one account and region, by state, as they are said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCounts {
    /// Names of running instances.
    pub running: Vec<String>,
    /// Names of stopped instances.
    pub stopped: Vec<String>,
    /// How many are starting, stopping or shutting down.
    pub changing: usize,
}

impl InstanceCounts {
    fn of(instances: &[InstanceInfo]) -> Self {
        let named = |state| {
            instances
                .iter()
                .filter(|i| i.state == state)
                .map(|i| i.label().to_owned())
                .collect::<Vec<_>>()
        };
        Self {
            running: named(InstanceState::Running),
            stopped: named(InstanceState::Stopped),
            changing: instances
                .iter()
                .filter(|i| !matches!(i.state, InstanceState::Running | InstanceState::Stopped))
                .count(),
        }
    }
}

/// The instance family.
#[derive(Debug)]
pub struct Instances;

#[async_trait::async_trait]
impl Family for Instances {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let result = match declaration.name {
            "instances.list" => list(ask).await,
            "instances.status" => status(ask).await,
            "instances.start" => change(ask, Action::Start).await,
            "instances.stop" => change(ask, Action::Stop).await,
            "instances.reboot" => change(ask, Action::Reboot).await,
            _ => Ok(Answer::say(Reply::NothingToSay)),
        };
        result.unwrap_or_else(|answer| answer)
    }

    /// The names of the person's instances, so Alexa hears "payroll-blue" too.
    async fn dynamic_entities(&self, ask: &Ask<'_>) -> Vec<(&'static str, Vec<(String, String)>)> {
        let mut values = Vec::new();
        for reached in everywhere(ask, None).await {
            if let Ok(instances) = reached.result {
                values.extend(
                    instances
                        .into_iter()
                        .filter(|i| i.name.is_some())
                        .map(|i| (i.id.clone(), i.label().to_owned())),
                );
            }
        }
        if values.is_empty() {
            return Vec::new();
        }
        vec![(INSTANCE.slot_type, values)]
    }
}

/// Every live instance in each account.
async fn everywhere(ask: &Ask<'_>, region: Option<&Region>) -> Vec<Reached<Vec<InstanceInfo>>> {
    ask.each_account(
        &list_instances_policy(),
        region,
        |session, region| async move { list_instances(&session.ec2(Some(&region))).await },
    )
    .await
}

/// "what's running": counts and names per account and region; the card lists them all.
async fn list(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let region = ask.region()?;
    let reached = everywhere(ask, region.as_ref()).await;
    let card = reached
        .iter()
        .flat_map(|r| {
            card_section(r, |instances| {
                if instances.is_empty() {
                    return vec!["no instances".to_owned()];
                }
                instances
                    .iter()
                    .map(|i| {
                        format!(
                            "{} ({}) {}, {}",
                            i.label(),
                            i.id,
                            i.state.as_str(),
                            i.instance_type
                        )
                    })
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .join("\n");
    let scoped = ask.scoped(reached, |_, instances| InstanceCounts::of(instances))?;
    Ok(Answer::Say {
        reply: Reply::Instances(scoped),
        card: Some(card),
    })
}

/// "is the web server up".
async fn status(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let found = named(ask).await?;
    let card = format!(
        "{} ({}): {}, {}, {}, account {}",
        found.instance.label(),
        found.instance.id,
        found.instance.state.as_str(),
        found.instance.instance_type,
        found.region,
        found.account.name
    );
    Ok(Answer::Say {
        reply: Reply::InstanceState {
            name: found.instance.label().to_owned(),
            state: found.instance.state,
        },
        card: Some(card),
    })
}

/// "stop the web server": find it; not held when it would change nothing or lacks the
/// managed tag.
async fn change(ask: &Ask<'_>, action: Action) -> Result<Answer, Answer> {
    let found = named(ask).await?;
    let op = InstanceOperation {
        action,
        account_id: found.account.id.as_str().to_owned(),
        account_name: found.account.name.clone(),
        region: found.region,
        instance_id: found.instance.id.clone(),
        instance_name: found.instance.label().to_owned(),
    };
    if action.would_do_nothing(found.instance.state) {
        return Ok(Answer::say(Reply::AlreadyInState {
            name: op.instance_name,
            state: found.instance.state,
        }));
    }
    let name = op.instance_name.clone();
    Ok(ask.hold_if_managed(
        ask.managed.marks(&found.instance.tags),
        &name,
        Operation::Instance(op),
    ))
}

/// An instance the person named, where it is.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its account.
    pub account: LinkedAccount,
    /// Its region.
    pub region: String,
    /// The instance.
    pub instance: InstanceInfo,
}

/// The context kept while voxgate asks "which one?": the candidates' accounts and ids.
const CANDIDATES: &str = "instanceCandidates";

/// The instance the person named across the tenant's accounts; or the answer instead:
/// which one (asked once, then voxgate stops asking), or that there is none.
pub async fn named(ask: &Ask<'_>) -> Result<Found, Answer> {
    let region = ask.region()?;
    let Some(spoken) = ask.value(INSTANCE_SLOT).map(str::to_owned) else {
        return Err(Answer::Elicit {
            reply: Reply::WhichInstance,
            slot: INSTANCE_SLOT,
            context: None,
        });
    };
    let reached = everywhere(ask, region.as_ref()).await;
    let some_failed = reached.iter().any(|r| r.result.is_err());
    let reached = answered(reached)?;
    let several = ask.several_accounts();
    let everything: Vec<Found> = reached
        .into_iter()
        .filter_map(|r| {
            let (account, region) = (r.account, r.region);
            r.result.ok().map(|instances| {
                instances
                    .into_iter()
                    .map(|instance| Found {
                        account: account.clone(),
                        region: region.clone(),
                        instance,
                    })
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect();
    let label = |f: &Found| {
        if several {
            format!("{} in {}", f.instance.label(), f.account.name)
        } else {
            f.instance.label().to_owned()
        }
    };
    if let Some(asked) = candidates(ask.context.as_ref()) {
        // The answer to "which one?": pick among those offered, or stop asking.
        let offered: Vec<Found> = asked
            .iter()
            .filter_map(|(account, id)| {
                everything
                    .iter()
                    .find(|f| f.account.id.as_str() == account && f.instance.id == *id)
                    .cloned()
            })
            .collect();
        if let Some(found) = pick(&spoken, &offered) {
            return Ok(found);
        }
        return Err(Answer::say(Reply::StillAmbiguous {
            candidates: offered.iter().map(label).collect(),
        }));
    }
    match names::find(&spoken, &everything, |f| f.instance.label()) {
        Match::One(found) => Ok(found),
        Match::Many(found) => Err(Answer::Elicit {
            reply: Reply::InstanceAmbiguous {
                spoken,
                candidates: found.iter().map(label).collect(),
            },
            slot: INSTANCE_SLOT,
            context: Some(json!({
                CANDIDATES: found
                    .iter()
                    .map(|f| json!([f.account.id.as_str(), f.instance.id]))
                    .collect::<Vec<_>>()
            })),
        }),
        Match::None if some_failed => {
            Err(Answer::say(Reply::InstanceNotFoundEverywhere { spoken }))
        }
        Match::None => Err(Answer::say(Reply::InstanceNotFound {
            spoken,
            known: everything.iter().map(label).collect(),
        })),
    }
}

/// The (account id, instance id) pairs offered at the last "which one?".
fn candidates(context: Option<&Value>) -> Option<Vec<(String, String)>> {
    let list = context?.get(CANDIDATES)?.as_array()?;
    let pairs: Vec<(String, String)> = list
        .iter()
        .filter_map(|pair| {
            Some((
                pair.get(0)?.as_str()?.to_owned(),
                pair.get(1)?.as_str()?.to_owned(),
            ))
        })
        .collect();
    (!pairs.is_empty()).then_some(pairs)
}

/// Ordinals as people say them after a list ("the first one", "number two", "the last").
const ORDINALS: &[(&str, usize)] = &[
    ("first", 1),
    ("1st", 1),
    ("second", 2),
    ("2nd", 2),
    ("third", 3),
    ("3rd", 3),
    ("fourth", 4),
    ("4th", 4),
    ("fifth", 5),
    ("5th", 5),
];

/// Which of `offered` the person means: "the first one", "the one in staging",
/// "staging", "web-1 in prod", or a name only one of them has.
fn pick(spoken: &str, offered: &[Found]) -> Option<Found> {
    let lower = spoken.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // Ordinals only as the whole answer ("the first one", "second", "number two", "the
    // last"): "db last" is a name, not the last candidate.
    let bare: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !["the", "one", "please"].contains(w))
        .collect();
    if bare == ["last"] {
        return offered.last().cloned();
    }
    let ordinal = match bare.as_slice() {
        [word] => ORDINALS.iter().find(|(w, _)| w == word).map(|(_, n)| *n),
        ["number" | "option", n] => names::normalise(n).parse::<usize>().ok(),
        _ => None,
    };
    if let Some(n) = ordinal {
        return n.checked_sub(1).and_then(|i| offered.get(i)).cloned();
    }
    // "the one in staging", "in staging", "staging", "the staging one".
    let rest: String = words
        .iter()
        .filter(|w| {
            ![
                "the", "one", "in", "from", "account", "that", "s", "it", "is",
            ]
            .contains(w)
        })
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let only = |keep: &dyn Fn(&Found) -> bool| {
        let kept: Vec<&Found> = offered.iter().filter(|f| keep(f)).collect();
        match kept.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    };
    let wanted = names::normalise(&rest);
    if wanted.is_empty() {
        return None;
    }
    only(&|f| names::normalise(&f.account.name) == wanted)
        .or_else(|| {
            only(&|f| {
                Region::spoken_name(&f.region).is_some_and(|n| names::normalise(n) == wanted)
                    || names::normalise(&f.region) == wanted
            })
        })
        .or_else(|| {
            only(&|f| {
                names::normalise(&format!("{} {}", f.instance.label(), f.account.name)) == wanted
            })
        })
        .or_else(|| only(&|f| names::normalise(f.instance.label()) == wanted))
}

#[async_trait::async_trait]
impl Critical for InstanceOperation {
    super::catalog::critical_identity!(KIND);

    fn summary(&self) -> String {
        InstanceOperation::summary(self)
    }

    fn well_formed(&self) -> bool {
        super::catalog::region_code(&self.region) && super::catalog::aws_id(&self.instance_id, "i-")
    }

    fn digest(&self) -> String {
        InstanceOperation::digest(self)
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Action", self.action.verb().to_owned()),
            (
                "Instance",
                format!("{} ({})", self.instance_name, self.instance_id),
            ),
        ]
    }

    fn guard_policy(&self) -> SessionPolicy {
        list_instances_policy()
    }

    fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        InstanceOperation::policy(self, aws_account, managed)
    }

    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        _now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        InstanceOperation::guard(self, read, managed).await
    }

    async fn execute(
        &self,
        session: &AwsSession,
        _deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        InstanceOperation::execute(self, session).await
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
        assert_eq!(op().summary(), "Stop web-1 in prod, Ireland");
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
