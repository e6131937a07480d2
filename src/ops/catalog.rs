//! The catalog: every operation voxgate can run, declared once.
//!
//! Each family module (`instances`, `cleanup`, `vpn`, …) declares its operations in a
//! `DECLARATIONS` table (the intent that asks for it, its slots, read or critical, every IAM
//! action it calls) and implements [`Family`]: given an [`Ask`] (the spoken slots, the
//! speaker's accounts, sessions) it answers with findings to say, a question, or the
//! critical operation to hold. Its critical operations are variants of [`Operation`], the
//! type the gate holds and the store keeps. The skill dispatches every intent that is not a
//! built-in through [`find`]; adding an operation touches its family module, this file's
//! registries ([`families`], [`Operation`]), the interaction model and the speech catalog,
//! never the gate or the router.

use serde_json::Value;

use super::ask::{Answer, Ask};
use super::{ManagedTag, OpsError, SessionPolicy, budgets, cleanup, instances};
use crate::cloud::broker::AwsSession;

/// Whether an operation only reads, or changes the account and is held for a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    /// Answers at once.
    Read,
    /// Held until the person says the code from their companion app.
    Critical,
}

/// A slot an operation's intent has in the interaction model: name and slot type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotSpec {
    /// Slot name as in the model.
    pub name: &'static str,
    /// Slot type, e.g. `AMAZON.NUMBER`.
    pub slot_type: &'static str,
}

/// The region slot most operations have ("stop reports in Ohio").
pub const REGION: SlotSpec = SlotSpec {
    name: super::ask::REGION_SLOT,
    slot_type: "AWS_REGION",
};

/// One operation as declared by its family.
#[derive(Debug)]
pub struct Declaration {
    /// Stable name, `family.verb` (e.g. `instances.stop`).
    pub name: &'static str,
    /// The intent of the interaction model that asks for it.
    pub intent: &'static str,
    /// The slots of that intent it reads; the model must declare exactly these.
    pub slots: &'static [SlotSpec],
    /// Read or critical.
    pub criticality: Criticality,
    /// Every IAM action its reads, guard and execution call; the customer role must grant
    /// each of them, and grants nothing no declaration names.
    pub iam_actions: &'static [&'static str],
}

/// An operation family: declares its operations and answers the intents that ask for
/// them. The skill dispatches through [`find`]; a new family is one more entry in
/// [`families`].
#[async_trait::async_trait]
pub trait Family: Sync {
    /// Its operations.
    fn declarations(&self) -> &'static [Declaration];

    /// Answers a request for `declaration`: a read's findings, a question, or the
    /// critical operation to hold.
    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer;

    /// This person's own values of the family's slot types, taught to Alexa at the start
    /// of a session: (slot type, [(id, how it is said)]). None by default.
    async fn dynamic_entities(&self, _ask: &Ask<'_>) -> Vec<(&'static str, Vec<(String, String)>)> {
        Vec::new()
    }
}

/// Every family.
pub fn families() -> [&'static dyn Family; 9] {
    [
        &instances::Instances,
        &cleanup::Cleanup,
        &super::vpn::Vpn,
        &budgets::Budgets,
        &super::alarms::Alarms,
        &super::ssm::Ssm,
        &super::cloudfront::CloudFront,
        &super::security::Security,
        &super::cost::Cost,
    ]
}

/// Every declared operation, family by family.
pub fn declarations() -> impl Iterator<Item = &'static Declaration> {
    families().into_iter().flat_map(|f| f.declarations().iter())
}

/// The family and operation the intent `name` asks for.
pub fn find(intent: &str) -> Option<(&'static dyn Family, &'static Declaration)> {
    families().into_iter().find_map(|family| {
        family
            .declarations()
            .iter()
            .find(|d| d.intent == intent)
            .map(|d| (family, d))
    })
}

/// A critical operation with every parameter that defines it: what the gate holds, the
/// store keeps (see [`Operation::to_stored`]) and the execute path re-checks and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Start, stop or reboot one instance.
    Instance(instances::InstanceOperation),
    /// Delete exactly the unused resources a cleanup report listed.
    Cleanup(cleanup::CleanupOperation),
    /// Set an account's monthly cost budget.
    Budget(budgets::BudgetOperation),
    /// See [`super::alarms`].
    Alarm(super::alarms::AlarmOperation),
    /// See [`super::ssm`].
    HealthCheck(super::ssm::HealthCheckOperation),
    /// See [`super::cloudfront`].
    Invalidation(super::cloudfront::InvalidationOperation),
}

/// What the guard found just before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Still what was approved: run it.
    Clear,
    /// No longer carries the managed tag (or is gone).
    NotManaged,
    /// Something changed since the approval; the reason is for the audit log.
    Changed(String),
}

/// How a run ended, in terms the speech catalog can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The instance change was sent and accepted.
    Instance(instances::InstanceOperation),
    /// What a cleanup deleted and what it could not.
    Cleanup(cleanup::CleanupResult),
    /// The budget was set.
    Budget(budgets::BudgetOperation),
    /// See [`super::alarms`].
    Alarm(super::alarms::AlarmOperation),
    /// See [`super::ssm`]: the command SSM took.
    HealthCheck(super::ssm::HealthCheckSent),
    /// See [`super::cloudfront`]: the invalidation CloudFront took.
    Invalidation(super::cloudfront::InvalidationSent),
}

/// How a run that got answers settled, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// What was asked for was done (a cleanup may still have had some parts refused).
    Done,
    /// AWS refused every part: nothing changed.
    Refused,
    /// At least one part got no answer: whether it happened is unknown.
    Unknown,
}

/// A run that AWS answered: its request ids (for the audit log) and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// AWS request id(s), if AWS gave any.
    pub request_id: Option<String>,
    /// What to say.
    pub report: Report,
}

impl Done {
    /// The card after a run: what was approved, and the ids to look it up by (AWS request
    /// ids; the SSM command id).
    pub fn card(&self, summary: &str) -> String {
        let mut lines = vec![format!("Done: {summary}")];
        if let Report::HealthCheck(sent) = &self.report {
            lines.push(format!("SSM command {}, {}", sent.command_id, sent.status));
        }
        if let Report::Invalidation(sent) = &self.report {
            lines.push(format!(
                "CloudFront invalidation {}, {}",
                sent.id, sent.status
            ));
        }
        if let Some(id) = &self.request_id {
            lines.push(format!("AWS request {id}"));
        }
        lines.join("\n")
    }

    /// How it settled: see [`Settled`].
    pub fn settled(&self) -> Settled {
        match &self.report {
            Report::Cleanup(result) if !result.unknown.is_empty() => Settled::Unknown,
            Report::Cleanup(result) if result.deleted.is_empty() => Settled::Refused,
            // A single call AWS answered: done.
            _ => Settled::Done,
        }
    }
}

/// The parts of [`Critical`] every operation writes the same way, inside its
/// `impl Critical`: its kind, its stored form (its serde form), its account fields, and its
/// `region` field (or `global` for account-wide services).
macro_rules! critical_identity {
    ($kind:expr) => {
        $crate::ops::catalog::critical_identity!(@common $kind);
        fn region(&self) -> &str {
            &self.region
        }
    };
    ($kind:expr, global) => {
        $crate::ops::catalog::critical_identity!(@common $kind);
        fn region(&self) -> &str {
            "global"
        }
    };
    (@common $kind:expr) => {
        fn kind(&self) -> &'static str {
            $kind
        }
        fn to_stored(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
        fn account_id(&self) -> &str {
            &self.account_id
        }
        fn account_name(&self) -> &str {
            &self.account_name
        }
    };
}
pub(super) use critical_identity;

/// What every critical operation can tell and do; [`Operation`] hands each call to its
/// variant's implementation.
#[async_trait::async_trait]
pub trait Critical: Send + Sync {
    /// The kind it is stored under (one per operation type, never reused).
    fn kind(&self) -> &'static str;
    /// Its stored form (without the kind).
    fn to_stored(&self) -> Value;
    /// voxgate's id of the linked account it acts in.
    fn account_id(&self) -> &str;
    /// The label of that account ("prod").
    fn account_name(&self) -> &str;
    /// The region it acts in (`global` for account-wide services).
    fn region(&self) -> &str;
    /// The canonical summary, e.g. "Stop web-1 in prod, Ireland".
    fn summary(&self) -> String;
    /// Whether every parameter has the shape AWS gives it (a region code, an instance id,
    /// a name without wildcards): a stored operation that does not is never read back, so
    /// an altered row cannot widen a session policy.
    fn well_formed(&self) -> bool;
    /// SHA-256 (hex) over a versioned canonical encoding of the exact parameters.
    fn digest(&self) -> String;
    /// The facts the companion app lists under the summary (account and region are added).
    fn details(&self) -> Vec<(&'static str, String)>;
    /// The session policy of the reads its guard makes.
    fn guard_policy(&self) -> SessionPolicy;
    /// The session policy of the change: exactly its actions on exactly its resources,
    /// under the managed-tag condition where AWS supports it.
    fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy;
    /// Re-checks, just before running, that what was approved is still what would run.
    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError>;
    /// Runs it with `session` (whose clients never retry a change); sends nothing that
    /// could not be answered before `deadline`.
    async fn execute(
        &self,
        session: &AwsSession,
        deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError>;
}

/// Every kind this build can read back.
const KINDS: &[&str] = &[
    instances::KIND,
    cleanup::KIND,
    budgets::KIND,
    super::alarms::KIND,
    super::ssm::KIND,
    super::cloudfront::KIND,
];

impl Operation {
    /// The variant's implementation.
    fn critical(&self) -> &dyn Critical {
        match self {
            Self::Instance(op) => op,
            Self::Cleanup(op) => op,
            Self::Budget(op) => op,
            Self::Alarm(op) => op,
            Self::HealthCheck(op) => op,
            Self::Invalidation(op) => op,
        }
    }

    /// Reads back what [`Operation::to_stored`] wrote under `kind`; `None` for an unknown
    /// kind or a form this version cannot read.
    pub fn from_stored(kind: &str, stored: Value) -> Option<Self> {
        Self::parse_stored(kind, stored).filter(|op| op.critical().well_formed())
    }

    fn parse_stored(kind: &str, stored: Value) -> Option<Self> {
        match kind {
            instances::KIND => serde_json::from_value(stored).ok().map(Self::Instance),
            cleanup::KIND => serde_json::from_value::<cleanup::CleanupOperation>(stored)
                .ok()
                .filter(|op| (1..=cleanup::MAX_PER_CLEANUP).contains(&op.resources.len()))
                .map(Self::Cleanup),
            budgets::KIND => serde_json::from_value::<budgets::BudgetOperation>(stored)
                .ok()
                .filter(|op| (1..=budgets::MAX_BUDGET).contains(&op.amount))
                .map(Self::Budget),
            super::alarms::KIND => serde_json::from_value::<super::alarms::AlarmOperation>(stored)
                .ok()
                .filter(|op| (1..=100).contains(&op.percent))
                .map(Self::Alarm),
            super::ssm::KIND => serde_json::from_value::<super::ssm::HealthCheckOperation>(stored)
                .ok()
                .filter(|op| op.document == crate::ops::ssm::HEALTH_CHECK_DOCUMENT)
                .map(Self::HealthCheck),
            super::cloudfront::KIND => {
                serde_json::from_value::<super::cloudfront::InvalidationOperation>(stored)
                    .ok()
                    .filter(|op| !op.paths.is_empty() && op.paths.len() <= 30)
                    .map(Self::Invalidation)
            }
            _ => None,
        }
    }

    /// Whether this build knows operations of `kind`.
    pub fn knows_kind(kind: &str) -> bool {
        KINDS.contains(&kind)
    }

    /// The kind it is stored under, one per variant.
    pub fn kind(&self) -> &'static str {
        self.critical().kind()
    }

    /// Its stored form (without the kind); see [`Operation::from_stored`].
    pub fn to_stored(&self) -> Value {
        self.critical().to_stored()
    }

    /// voxgate's id of the linked account it acts in.
    pub fn account_id(&self) -> &str {
        self.critical().account_id()
    }

    /// The label of that account ("prod").
    pub fn account_name(&self) -> &str {
        self.critical().account_name()
    }

    /// The facts the companion app lists under the summary, as (label, value), ending with
    /// the account and the region.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let mut details = self.critical().details();
        details.push(("Account", self.account_name().to_owned()));
        details.push(("Region", self.region().to_owned()));
        details
    }

    /// The region it acts in.
    pub fn region(&self) -> &str {
        self.critical().region()
    }

    /// The canonical summary: what Alexa reads back, the app, the card and the audit log
    /// show.
    pub fn summary(&self) -> String {
        self.critical().summary()
    }

    /// SHA-256 (hex) over a versioned canonical encoding of the exact parameters: the
    /// one-time code is bound to it.
    pub fn digest(&self) -> String {
        self.critical().digest()
    }

    /// The session policy of the reads its guard makes.
    pub fn guard_policy(&self) -> SessionPolicy {
        self.critical().guard_policy()
    }

    /// The session policy of the change.
    pub fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        self.critical().policy(aws_account, managed)
    }

    /// Re-checks, just before running (at `now`), that what was approved is still what
    /// would run.
    pub async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        self.critical().guard(read, managed, now).await
    }

    /// Runs it with `session`; see [`Critical::execute`].
    pub async fn execute(
        &self,
        session: &AwsSession,
        deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        self.critical().execute(session, deadline).await
    }
}

/// Whether `id` is `prefix` followed by lower-case hex (`i-0abc…`, `vol-…`).
pub(super) fn aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `region` is a region code.
pub(super) fn region_code(region: &str) -> bool {
    crate::cloud::arn::Region::parse(region).is_ok_and(|r| r.as_str() == region)
}

/// SHA-256 (hex) of a canonical encoding.
pub(super) fn sha256_hex(canonical: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples of every critical operation.
    fn all_examples() -> Vec<Operation> {
        instances::examples()
            .into_iter()
            .chain(cleanup::examples())
            .chain(budgets::examples())
            .chain(crate::ops::alarms::examples())
            .chain(crate::ops::ssm::examples())
            .chain(crate::ops::cloudfront::examples())
            .collect()
    }

    #[test]
    fn every_operation_is_declared_once_with_a_known_intent() {
        let mut names = std::collections::HashSet::new();
        let mut intents = std::collections::HashSet::new();
        for declaration in declarations() {
            assert!(names.insert(declaration.name), "{}", declaration.name);
            assert!(intents.insert(declaration.intent), "{}", declaration.intent);
            assert!(!declaration.iam_actions.is_empty(), "{}", declaration.name);
        }
        assert_eq!(
            find("StopInstanceIntent").map(|(_, d)| d.criticality),
            Some(Criticality::Critical)
        );
        assert_eq!(
            find("ListInstancesIntent").map(|(_, d)| d.criticality),
            Some(Criticality::Read)
        );
    }

    #[test]
    fn every_critical_operation_reads_back_what_it_stored() {
        for op in all_examples() {
            assert!(Operation::knows_kind(op.kind()));
            let read = Operation::from_stored(op.kind(), op.to_stored()).expect("read back");
            assert_eq!(read, op);
            assert_eq!(read.digest(), op.digest());
            assert!(Operation::from_stored("no-such-kind", op.to_stored()).is_none());
            // A field this version does not know means another meaning: not read.
            let mut extra = op.to_stored();
            extra["force"] = Value::Bool(true);
            assert!(Operation::from_stored(op.kind(), extra).is_none());
        }
        // A cleanup of nothing, or of more than one approval may delete, is not read.
        let mut empty = cleanup::examples()[0].to_stored();
        empty["resources"] = Value::Array(Vec::new());
        assert!(Operation::from_stored(cleanup::KIND, empty).is_none());
        let mut huge = cleanup::examples()[0].to_stored();
        let one = huge["resources"][0].clone();
        huge["resources"] = Value::Array(vec![one; cleanup::MAX_PER_CLEANUP + 1]);
        assert!(Operation::from_stored(cleanup::KIND, huge).is_none());
    }

    #[test]
    fn an_altered_row_cannot_widen_a_session_policy() {
        for op in all_examples() {
            let stored = op.to_stored();
            for (field, value) in [
                ("region", "*"),
                ("instance_id", "i-*"),
                ("budget_name", "*"),
                ("distribution_id", "*"),
                ("document", "AWS-RunShellScript"),
            ] {
                if stored.get(field).is_none() {
                    continue;
                }
                let mut altered = stored.clone();
                altered[field] = Value::String(value.to_owned());
                assert!(
                    Operation::from_stored(op.kind(), altered).is_none(),
                    "{} with {field}={value}",
                    op.kind()
                );
            }
        }
    }

    /// Each family's `variations` changes one parameter at a time; every one must give
    /// another digest (and so another code), while a change of a label must not.
    #[test]
    fn every_critical_operations_digest_changes_with_any_parameter() {
        let cases = instances::variations()
            .into_iter()
            .chain(cleanup::variations())
            .chain(budgets::variations())
            .chain(crate::ops::alarms::variations())
            .chain(crate::ops::ssm::variations())
            .chain(crate::ops::cloudfront::variations());
        let mut count = 0;
        for (base, changed, relabelled) in cases {
            count += 1;
            assert_ne!(base.digest(), changed.digest(), "{changed:?}");
            if let Some(relabelled) = relabelled {
                assert_eq!(base.digest(), relabelled.digest(), "{relabelled:?}");
            }
        }
        assert!(count >= 8, "only {count} variations");
        // Digests never collide across kinds.
        let digests: std::collections::HashSet<String> =
            all_examples().iter().map(Operation::digest).collect();
        assert_eq!(digests.len(), all_examples().len());
    }
}
