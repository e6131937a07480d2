//! Cleanup: what costs money and does nothing (read), and deleting exactly that (critical).
//!
//! The report finds unattached EBS volumes, Elastic IPs associated with nothing, and
//! snapshots older than a set age that no AMI of the account uses, and estimates what they
//! cost a month. The cleanup deletes exactly the managed ones the report listed (their ids
//! are in the digest), after checking again that each is still unused.
//!
//! Prices are an estimate: list prices of us-east-1 in US dollars (gp3 $0.08, gp2 $0.10,
//! io1/io2 $0.125, st1 $0.045, sc1 $0.015, magnetic $0.05 per GB-month; snapshots $0.05 per
//! GB-month; an idle public IPv4 address $0.005 an hour), scaled by a small per-region
//! factor. Real bills differ (free tiers, discounts, other regions' exact prices).

use aws_sdk_ec2::types::Filter;
use time::OffsetDateTime;

use super::ask::{Answer, Ask, card_section};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, REGION, Report, sha256_hex,
};
use super::reply::Reply;
use super::words::monthly;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::arn::Region;
use crate::cloud::broker::AwsSession;

/// The kind cleanups are stored under.
pub const KIND: &str = "ec2-cleanup";

/// Every read the report (and the cleanup's guard) makes.
const REPORT_ACTIONS: &[&str] = &[
    "ec2:DescribeVolumes",
    "ec2:DescribeAddresses",
    "ec2:DescribeSnapshots",
    "ec2:DescribeImages",
];

/// The cleanup family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "cleanup.report",
        intent: "CleanupReportIntent",
        slots: &[REGION],
        criticality: Criticality::Read,
        iam_actions: REPORT_ACTIONS,
    },
    Declaration {
        name: "cleanup.delete",
        intent: "CleanupIntent",
        slots: &[REGION],
        criticality: Criticality::Critical,
        iam_actions: &[
            "ec2:DescribeVolumes",
            "ec2:DescribeAddresses",
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "ec2:DeleteVolume",
            "ec2:ReleaseAddress",
            "ec2:DeleteSnapshot",
        ],
    },
];

/// At most this many resources go into one cleanup: its session policy names each one, and
/// AWS refuses session policies over 2,048 characters. A larger report is cleaned up over
/// several approvals, this many at a time.
pub const MAX_PER_CLEANUP: usize = 20;

/// The longest session policy AWS takes, in characters.
const MAX_POLICY_CHARS: usize = 2048;

/// The session policy of the report: Describe calls have no resource-level permissions.
pub fn report_policy() -> SessionPolicy {
    SessionPolicy::allow(REPORT_ACTIONS, &["*"])
}

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// An EBS volume attached to nothing.
    Volume,
    /// An Elastic IP associated with nothing.
    Address,
    /// A snapshot no AMI uses.
    Snapshot,
}

/// One unused resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unused {
    /// What it is.
    pub kind: ResourceKind,
    /// `vol-…`, `eipalloc-…` or `snap-…`.
    pub id: String,
    /// Its `Name` tag, or its public IP for an address.
    pub label: Option<String>,
    /// Size in GiB (volumes and snapshots).
    pub size_gib: i64,
    /// Estimated cost a month, in US cents.
    pub monthly_cents: u64,
    /// Whether it carries the managed tag (only those are ever deleted).
    pub managed: bool,
}

/// The report: every unused resource in one account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Everything found, volumes first, by id.
    pub unused: Vec<Unused>,
}

impl CleanupReport {
    /// How many of `kind`.
    pub fn count(&self, kind: ResourceKind) -> usize {
        self.unused.iter().filter(|u| u.kind == kind).count()
    }

    /// The estimated saving a month of deleting everything, in US cents.
    pub fn monthly_cents(&self) -> u64 {
        self.unused.iter().map(|u| u.monthly_cents).sum()
    }

    /// Only the managed resources (what a cleanup may delete).
    pub fn managed(&self) -> Vec<Unused> {
        self.unused.iter().filter(|u| u.managed).cloned().collect()
    }

    /// What one cleanup in `region` deletes: the managed resources, at most
    /// [`MAX_PER_CLEANUP`], and fewer if its session policy (which names each one under the
    /// managed tag) would be longer than AWS takes.
    pub fn next_cleanup(&self, region: &str, managed: &ManagedTag) -> Vec<Unused> {
        let mut op = CleanupOperation {
            account_id: String::new(),
            account_name: String::new(),
            region: region.to_owned(),
            resources: self.managed(),
            snapshot_age_days: 0,
        };
        op.resources.truncate(MAX_PER_CLEANUP);
        while op.resources.len() > 1
            && op.policy("000000000000", managed).to_json().len() > MAX_POLICY_CHARS
        {
            op.resources.pop();
        }
        op.resources
    }
}

/// The factor of a region's prices against us-east-1 (an estimate; unknown regions 1.0).
fn region_factor(region: &str) -> f64 {
    match region {
        "us-east-1" | "us-east-2" | "us-west-2" => 1.0,
        "us-west-1" => 1.2,
        "eu-west-1" | "eu-north-1" => 1.1,
        "eu-west-2" | "eu-west-3" | "eu-central-1" => 1.19,
        "ap-southeast-1" | "ap-southeast-2" | "ap-northeast-1" => 1.2,
        "sa-east-1" => 1.9,
        _ => 1.0,
    }
}

/// US dollars per GB-month of an EBS volume type in us-east-1.
fn volume_price(volume_type: &str) -> f64 {
    match volume_type {
        "gp3" => 0.08,
        "gp2" => 0.10,
        "io1" | "io2" => 0.125,
        "st1" => 0.045,
        "sc1" => 0.015,
        _ => 0.05,
    }
}

const SNAPSHOT_PRICE: f64 = 0.05;
const IDLE_ADDRESS_MONTHLY: f64 = 0.005 * 730.0;

fn cents(dollars: f64, region: &str) -> u64 {
    (dollars * region_factor(region) * 100.0).round() as u64
}

fn tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

fn name_of(tags: &[(String, String)]) -> Option<String> {
    tags.iter()
        .find(|(k, _)| k == "Name")
        .map(|(_, v)| v.clone())
}

/// The cleanup family.
#[derive(Debug)]
pub struct Cleanup;

#[async_trait::async_trait]
impl Family for Cleanup {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let delete = declaration.name == "cleanup.delete";
        answer(ask, delete).await.unwrap_or_else(|answer| answer)
    }
}

/// "what can I clean up" (`delete` false), and "clean up unused resources" (`delete`
/// true: holds the deletion of exactly the managed unused resources found, in the first
/// account that has any; the next account's are held once that one is done).
async fn answer(ask: &Ask<'_>, delete: bool) -> Result<Answer, Answer> {
    let region = ask.region()?;
    let (age, now, managed) = (ask.settings.snapshot_age, ask.now, ask.managed);
    let reached = ask
        .each_account(
            &report_policy(),
            region.as_ref(),
            |session, region| async move {
                report(&session.ec2(Some(&region)), &region, managed, age, now).await
            },
        )
        .await;
    let mut card: Vec<String> = reached
        .iter()
        .flat_map(|r| {
            card_section(r, |report| {
                if report.unused.is_empty() {
                    return vec!["nothing unused".to_owned()];
                }
                report
                    .unused
                    .iter()
                    .map(|u| {
                        format!(
                            "{} {}{}, {} a month{}",
                            u.id,
                            u.label.as_deref().unwrap_or(""),
                            if u.size_gib > 0 {
                                format!(" {} GiB", u.size_gib)
                            } else {
                                String::new()
                            },
                            dollars(u.monthly_cents),
                            if u.managed { "" } else { ", not managed" }
                        )
                    })
                    .collect()
            })
        })
        .collect();
    card.push("Costs are estimates from list prices.".into());
    if !delete {
        let scoped = ask.scoped(reached, |_, report| report.unused.clone())?;
        return Ok(Answer::Say {
            reply: Reply::CleanupReport(scoped),
            card: Some(card.join("\n")),
        });
    }
    let mut unmanaged = 0;
    let mut first_trouble = None;
    for r in reached {
        match r.result {
            Ok(report) if !report.managed().is_empty() => {
                let resources = report.next_cleanup(&r.region, managed);
                return Ok(Answer::Hold(Box::new(Operation::Cleanup(
                    CleanupOperation {
                        account_id: r.account.id.as_str().to_owned(),
                        account_name: r.account.name.clone(),
                        resources,
                        region: r.region,
                        snapshot_age_days: age.whole_days(),
                    },
                ))));
            }
            Ok(report) => unmanaged += report.unused.len(),
            Err(trouble) => {
                first_trouble.get_or_insert((r.account, trouble));
            }
        }
    }
    // Nothing to hold; an account that could not be looked at says so rather than
    // passing for clean.
    Ok(match first_trouble {
        Some((account, trouble)) => Answer::Trouble(Box::new(account), trouble),
        None => Answer::say(Reply::NothingToClean { unmanaged }),
    })
}

/// Every unused resource in `region`: snapshots count when older than `snapshot_age`.
pub async fn report(
    client: &aws_sdk_ec2::Client,
    region: &str,
    managed: &ManagedTag,
    snapshot_age: time::Duration,
    now: OffsetDateTime,
) -> Result<CleanupReport, OpsError> {
    let mut unused = Vec::new();

    let mut token = None;
    loop {
        let page = client
            .describe_volumes()
            .filters(Filter::builder().name("status").values("available").build())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for volume in page.volumes() {
            if !volume.attachments().is_empty() {
                continue;
            }
            let tags = tags_of(volume.tags());
            let size = i64::from(volume.size().unwrap_or(0));
            let kind = volume
                .volume_type()
                .map(|t| t.as_str())
                .unwrap_or("standard");
            unused.push(Unused {
                kind: ResourceKind::Volume,
                id: volume.volume_id().unwrap_or_default().to_owned(),
                label: name_of(&tags),
                size_gib: size,
                monthly_cents: cents(size as f64 * volume_price(kind), region),
                managed: managed.marks(&tags),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }

    let addresses = client
        .describe_addresses()
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    for address in addresses.addresses() {
        let set = |v: Option<&str>| v.is_some_and(|v| !v.is_empty());
        if set(address.association_id())
            || set(address.instance_id())
            || set(address.network_interface_id())
        {
            continue;
        }
        let Some(id) = address.allocation_id() else {
            continue;
        };
        let tags = tags_of(address.tags());
        unused.push(Unused {
            kind: ResourceKind::Address,
            id: id.to_owned(),
            label: name_of(&tags).or_else(|| address.public_ip().map(str::to_owned)),
            size_gib: 0,
            monthly_cents: cents(IDLE_ADDRESS_MONTHLY, region),
            managed: managed.marks(&tags),
        });
    }

    // Snapshots an AMI of the account is built from are in use.
    let images = client
        .describe_images()
        .owners("self")
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    let used: std::collections::HashSet<String> = images
        .images()
        .iter()
        .flat_map(|image| image.block_device_mappings())
        .filter_map(|mapping| mapping.ebs()?.snapshot_id().map(str::to_owned))
        .collect();
    let mut token = None;
    loop {
        let page = client
            .describe_snapshots()
            .owner_ids("self")
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for snapshot in page.snapshots() {
            let id = snapshot.snapshot_id().unwrap_or_default();
            let started = snapshot
                .start_time()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
            let old = started.is_some_and(|t| now - t >= snapshot_age);
            if used.contains(id) || !old {
                continue;
            }
            let tags = tags_of(snapshot.tags());
            let size = i64::from(snapshot.volume_size().unwrap_or(0));
            unused.push(Unused {
                kind: ResourceKind::Snapshot,
                id: id.to_owned(),
                label: name_of(&tags),
                size_gib: size,
                monthly_cents: cents(size as f64 * SNAPSHOT_PRICE, region),
                managed: managed.marks(&tags),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    unused.sort_by(|a, b| (a.kind as u8, &a.id).cmp(&(b.kind as u8, &b.id)));
    Ok(CleanupReport { unused })
}

/// Deleting exactly these resources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupOperation {
    /// voxgate's id of the linked account.
    pub account_id: String,
    /// Its label ("prod").
    pub account_name: String,
    /// Region.
    pub region: String,
    /// The managed unused resources the report listed, by kind and id.
    pub resources: Vec<Unused>,
    /// How many snapshot days count as old (the report's setting, for the guard).
    pub snapshot_age_days: i64,
}

/// What a cleanup did, resource by resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupResult {
    /// Deleted (or released).
    pub deleted: Vec<Unused>,
    /// Refused by AWS, with the error code; nothing happened to these.
    pub failed: Vec<(Unused, String)>,
    /// Sent, but no answer came: whether they are gone is unknown.
    pub unknown: Vec<Unused>,
    /// Not attempted (the deadline came first).
    pub skipped: Vec<Unused>,
}

impl CleanupResult {
    /// Estimated saving a month of what was deleted, in US cents.
    pub fn monthly_cents(&self) -> u64 {
        self.deleted.iter().map(|u| u.monthly_cents).sum()
    }
}

/// "2 volumes, 1 Elastic IP and 1 snapshot".
pub fn counted(resources: &[Unused]) -> String {
    let count = |kind| resources.iter().filter(|u| u.kind == kind).count();
    let mut parts = Vec::new();
    for (kind, one, many) in [
        (
            ResourceKind::Volume,
            "unattached volume",
            "unattached volumes",
        ),
        (
            ResourceKind::Address,
            "unused Elastic IP",
            "unused Elastic IPs",
        ),
        (ResourceKind::Snapshot, "old snapshot", "old snapshots"),
    ] {
        match count(kind) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    match parts.len() {
        0 => "nothing".to_owned(),
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
}

/// "$12.34".
pub fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[async_trait::async_trait]
impl Critical for CleanupOperation {
    super::catalog::critical_identity!(KIND);

    fn summary(&self) -> String {
        CleanupOperation::summary(self)
    }

    fn well_formed(&self) -> bool {
        super::catalog::region_code(&self.region)
            && self.resources.iter().all(|u| {
                let prefix = match u.kind {
                    ResourceKind::Volume => "vol-",
                    ResourceKind::Address => "eipalloc-",
                    ResourceKind::Snapshot => "snap-",
                };
                super::catalog::aws_id(&u.id, prefix)
            })
    }

    fn digest(&self) -> String {
        CleanupOperation::digest(self)
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        CleanupOperation::details(self)
    }

    fn guard_policy(&self) -> SessionPolicy {
        report_policy()
    }

    fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        CleanupOperation::policy(self, aws_account, managed)
    }

    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        now: OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        CleanupOperation::guard(self, read, managed, now).await
    }

    async fn execute(
        &self,
        session: &AwsSession,
        deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        CleanupOperation::execute(self, session, deadline).await
    }
}

impl CleanupOperation {
    /// e.g. "Delete 2 unattached volumes and 1 unused Elastic IP in prod, Ireland, saving
    /// about 12 dollars a month".
    pub fn summary(&self) -> String {
        let cents: u64 = self.resources.iter().map(|u| u.monthly_cents).sum();
        format!(
            "Delete {} in {}, {}, saving {}",
            counted(&self.resources),
            self.account_name,
            Region::words(&self.region),
            monthly(cents)
        )
    }

    /// What the companion app lists: the action, every resource, the estimated saving.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let cents: u64 = self.resources.iter().map(|u| u.monthly_cents).sum();
        let resources: Vec<String> = self
            .resources
            .iter()
            .map(|u| match &u.label {
                Some(label) => format!("{} ({label})", u.id),
                None => u.id.clone(),
            })
            .collect();
        vec![
            ("Action", "Delete unused resources".to_owned()),
            ("Resources", resources.join(", ")),
            (
                "Saving",
                format!("about {} a month (estimate)", dollars(cents)),
            ),
        ]
    }

    /// Over the account, region and the sorted kind:id list: another set of resources is
    /// another operation with another code.
    pub fn digest(&self) -> String {
        let mut ids: Vec<String> = self
            .resources
            .iter()
            .map(|u| format!("{}:{}", kind_name(u.kind), u.id))
            .collect();
        ids.sort();
        sha256_hex(&format!(
            "voxgate-op-v1\nkind={KIND}\naccount={}\nregion={}\nresources={}\n",
            self.account_id,
            self.region,
            ids.join(",")
        ))
    }

    fn arn(&self, aws_account: &str, unused: &Unused) -> String {
        let region = &self.region;
        match unused.kind {
            ResourceKind::Volume => {
                format!("arn:aws:ec2:{region}:{aws_account}:volume/{}", unused.id)
            }
            ResourceKind::Address => {
                format!(
                    "arn:aws:ec2:{region}:{aws_account}:elastic-ip/{}",
                    unused.id
                )
            }
            ResourceKind::Snapshot => format!("arn:aws:ec2:{region}::snapshot/{}", unused.id),
        }
    }

    /// One statement per kind: exactly its delete action on exactly the listed resources,
    /// only while they carry the managed tag.
    pub fn policy(&self, aws_account: &str, managed: &ManagedTag) -> SessionPolicy {
        let mut policy = SessionPolicy::empty();
        for (kind, action) in [
            (ResourceKind::Volume, "ec2:DeleteVolume"),
            (ResourceKind::Address, "ec2:ReleaseAddress"),
            (ResourceKind::Snapshot, "ec2:DeleteSnapshot"),
        ] {
            let arns: Vec<String> = self
                .resources
                .iter()
                .filter(|u| u.kind == kind)
                .map(|u| self.arn(aws_account, u))
                .collect();
            if !arns.is_empty() {
                let arns: Vec<&str> = arns.iter().map(String::as_str).collect();
                policy = policy.and(SessionPolicy::allow_tagged(
                    &[action],
                    &arns,
                    &managed.key,
                    &managed.value,
                ));
            }
        }
        policy
    }

    /// Every listed resource must still be unused and managed; otherwise nothing runs.
    pub async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        now: OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        let fresh = report(
            &read.ec2(Some(&self.region)),
            &self.region,
            managed,
            time::Duration::days(self.snapshot_age_days.clamp(0, 3650)),
            now,
        )
        .await?;
        for resource in &self.resources {
            match fresh.unused.iter().find(|u| u.id == resource.id) {
                Some(u) if u.managed => {}
                Some(_) => return Ok(Guard::NotManaged),
                None => {
                    return Ok(Guard::Changed(format!(
                        "{} is no longer unused (or is gone)",
                        resource.id
                    )));
                }
            }
        }
        Ok(Guard::Clear)
    }

    /// Deletes each resource once, in order; a refusal is recorded and the next one tried,
    /// nothing is retried. If no answer comes for one (or AWS cannot be reached), whether it
    /// is gone is unknown and the rest are left alone. Always a report: how it settled is
    /// [`Done::settled`](super::catalog::Done::settled).
    pub async fn execute(
        &self,
        session: &AwsSession,
        deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        use aws_sdk_ec2::operation::RequestId as _;
        let client = session.ec2_for_change(Some(&self.region));
        let mut result = CleanupResult::default();
        let mut request_ids = Vec::new();
        let mut stop = false;
        for resource in &self.resources {
            // A call may take up to the SDK's operation timeout; one that could end past the
            // deadline is not sent (its outcome would be lost with the run).
            let time_left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if stop || time_left < crate::cloud::sdk::OPERATION_TIMEOUT {
                stop = true;
                result.skipped.push(resource.clone());
                continue;
            }
            let id = resource.id.as_str();
            let answer = match resource.kind {
                ResourceKind::Volume => client
                    .delete_volume()
                    .volume_id(id)
                    .send()
                    .await
                    .map(|o| o.request_id().map(str::to_owned))
                    .map_err(OpsError::from_sdk_change),
                ResourceKind::Address => client
                    .release_address()
                    .allocation_id(id)
                    .send()
                    .await
                    .map(|o| o.request_id().map(str::to_owned))
                    .map_err(OpsError::from_sdk_change),
                ResourceKind::Snapshot => client
                    .delete_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map(|o| o.request_id().map(str::to_owned))
                    .map_err(OpsError::from_sdk_change),
            };
            match answer {
                Ok(request_id) => {
                    request_ids.push(format!("{id}: {}", request_id.as_deref().unwrap_or("-")));
                    result.deleted.push(resource.clone());
                }
                Err(OpsError::NoAnswer(_)) => {
                    result.unknown.push(resource.clone());
                    stop = true;
                }
                Err(OpsError::Unreachable(_)) => {
                    result.skipped.push(resource.clone());
                    stop = true;
                }
                Err(OpsError::AccessDenied(_)) => {
                    result
                        .failed
                        .push((resource.clone(), "AccessDenied".into()));
                }
                Err(OpsError::Aws { code, .. }) => result.failed.push((resource.clone(), code)),
            }
        }
        for (resource, code) in &result.failed {
            request_ids.push(format!("{}: failed {code}", resource.id));
        }
        for resource in &result.unknown {
            request_ids.push(format!("{}: no answer", resource.id));
        }
        Ok(Done {
            request_id: (!request_ids.is_empty()).then(|| request_ids.join("; ")),
            report: Report::Cleanup(result),
        })
    }
}

fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Volume => "volume",
        ResourceKind::Address => "address",
        ResourceKind::Snapshot => "snapshot",
    }
}

#[cfg(test)]
fn sample() -> CleanupOperation {
    let unused = |kind, id: &str, cents| Unused {
        kind,
        id: id.into(),
        label: None,
        size_gib: 8,
        monthly_cents: cents,
        managed: true,
    };
    CleanupOperation {
        account_id: "a_1".into(),
        account_name: "prod".into(),
        region: "eu-west-1".into(),
        resources: vec![
            unused(ResourceKind::Volume, "vol-1", 88),
            unused(ResourceKind::Volume, "vol-2", 88),
            unused(ResourceKind::Address, "eipalloc-1", 402),
        ],
        snapshot_age_days: 90,
    }
}

/// Examples for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    vec![Operation::Cleanup(sample())]
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = sample();
    let with = |f: &dyn Fn(&mut CleanupOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::Cleanup(op)
    };
    let b = || Operation::Cleanup(base.clone());
    vec![
        (
            b(),
            with(&|op| op.resources[0].id = "vol-9".into()),
            Some(with(&|op| op.account_name = "production".into())),
        ),
        (
            b(),
            with(&|op| op.resources.truncate(2)),
            Some(with(&|op| op.resources.reverse())),
        ),
        (
            b(),
            with(&|op| op.resources[2].kind = ResourceKind::Snapshot),
            Some(with(&|op| op.resources[0].label = Some("old".into()))),
        ),
        (b(), with(&|op| op.region = "us-east-1".into()), None),
        (b(), with(&|op| op.account_id = "a_2".into()), None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_kinds_and_the_saving() {
        assert_eq!(
            sample().summary(),
            "Delete 2 unattached volumes and 1 unused Elastic IP in prod, Ireland, saving about \
             6 dollars a month"
        );
    }

    #[test]
    fn the_largest_cleanup_fits_in_a_session_policy() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let report = CleanupReport {
            unused: (0..3 * MAX_PER_CLEANUP)
                .map(|i| Unused {
                    kind: [
                        ResourceKind::Volume,
                        ResourceKind::Address,
                        ResourceKind::Snapshot,
                    ][i % 3],
                    id: format!("vol-{i:017x}"),
                    label: None,
                    size_gib: 1,
                    monthly_cents: 1,
                    managed: true,
                })
                .collect(),
        };
        let op = CleanupOperation {
            region: "ap-southeast-1".into(),
            resources: report.next_cleanup("ap-southeast-1", &tag),
            ..sample()
        };
        assert_eq!(op.resources.len(), MAX_PER_CLEANUP);
        let json = op.policy("111122223333", &tag).to_json();
        assert!(json.len() <= 2048, "{} characters", json.len());
        // A long managed tag leaves room for fewer, never for a policy AWS refuses.
        let long =
            ManagedTag::parse(&format!("{}={}", "k".repeat(60), "v".repeat(60))).expect("tag");
        let op = CleanupOperation {
            region: "ap-southeast-1".into(),
            resources: report.next_cleanup("ap-southeast-1", &long),
            ..sample()
        };
        assert!(!op.resources.is_empty() && op.resources.len() < MAX_PER_CLEANUP);
        let json = op.policy("111122223333", &long).to_json();
        assert!(json.len() <= 2048, "{} characters", json.len());
    }

    #[test]
    fn the_session_policy_names_each_resource_under_the_tag() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let doc: serde_json::Value =
            serde_json::from_str(&sample().policy("111122223333", &tag).to_json()).expect("json");
        let condition =
            serde_json::json!({"StringEquals": {"aws:ResourceTag/voxgate:managed": "true"}});
        assert_eq!(
            doc["Statement"],
            serde_json::json!([
                {"Effect": "Allow", "Action": ["ec2:DeleteVolume"], "Resource": [
                    "arn:aws:ec2:eu-west-1:111122223333:volume/vol-1",
                    "arn:aws:ec2:eu-west-1:111122223333:volume/vol-2"], "Condition": condition},
                {"Effect": "Allow", "Action": ["ec2:ReleaseAddress"], "Resource": [
                    "arn:aws:ec2:eu-west-1:111122223333:elastic-ip/eipalloc-1"], "Condition": condition},
            ])
        );
    }
}
