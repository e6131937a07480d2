//! Security check (read): security groups open to the whole internet on SSH, RDP or every
//! port; the account's password policy; active access keys older than 90 days. Speech gives
//! counts, the card lists every finding.

use aws_sdk_ec2::types::IpPermission;

use super::ask::{Answer, Ask, card_section};
use super::catalog::{Criticality, Declaration, Family, REGION};
use super::reply::Reply;
use super::{OpsError, SessionPolicy};
use crate::cloud::broker::AwsSession;

/// Passwords shorter than this are a weakness (CIS AWS Foundations).
pub const MIN_PASSWORD_LENGTH: i32 = 14;

const ACTIONS: &[&str] = &[
    "ec2:DescribeSecurityGroups",
    "iam:GetAccountPasswordPolicy",
    "iam:ListUsers",
    "iam:ListAccessKeys",
];

/// The security family's operations.
pub const DECLARATIONS: &[Declaration] = &[Declaration {
    name: "security.check",
    intent: "SecurityCheckIntent",
    slots: &[REGION],
    criticality: Criticality::Read,
    iam_actions: ACTIONS,
}];

/// The session policy of the check.
pub fn policy() -> SessionPolicy {
    SessionPolicy::allow(ACTIONS, &["*"])
}

/// What a security group leaves open to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Port 22.
    Ssh,
    /// Port 3389.
    Rdp,
    /// Every port (or every protocol).
    AllPorts,
}

/// A security group open to the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    /// `sg-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What is open.
    pub exposure: Exposure,
}

/// The account's password policy, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// None is set: IAM's defaults apply (8 characters, nothing more).
    Missing,
    /// Set, but below the benchmark: what is missing.
    Weak(Vec<String>),
    /// Set and at the benchmark.
    Strong,
}

/// An active access key older than the configured age (`--security-key-age-days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldKey {
    /// The IAM user.
    pub user: String,
    /// The key id's last four characters (enough to find it, nothing more).
    pub key_end: String,
    /// Its age in days.
    pub age_days: i64,
}

/// Everything the check found in one account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Security groups open to the world.
    pub open_groups: Vec<OpenGroup>,
    /// The password policy.
    pub password_policy: PasswordPolicy,
    /// Old access keys.
    pub old_keys: Vec<OldKey>,
    /// How old a key must be to count, in days.
    pub key_age_days: i64,
}

impl Findings {
    /// Whether there is nothing to report.
    pub fn clean(&self) -> bool {
        self.open_groups.is_empty()
            && self.old_keys.is_empty()
            && self.password_policy == PasswordPolicy::Strong
    }
}

/// What a rule of a security group leaves open to 0.0.0.0/0 or ::/0, if anything.
fn exposure(rule: &IpPermission) -> Option<Exposure> {
    let world = rule
        .ip_ranges()
        .iter()
        .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        || rule
            .ipv6_ranges()
            .iter()
            .any(|r| r.cidr_ipv6() == Some("::/0"));
    if !world {
        return None;
    }
    if rule.ip_protocol() == Some("-1") {
        return Some(Exposure::AllPorts);
    }
    let (from, to) = (
        rule.from_port().unwrap_or(0),
        rule.to_port().unwrap_or(65535),
    );
    if from <= 0 && to >= 65535 {
        Some(Exposure::AllPorts)
    } else if (from..=to).contains(&22) {
        Some(Exposure::Ssh)
    } else if (from..=to).contains(&3389) {
        Some(Exposure::Rdp)
    } else {
        None
    }
}

/// Security groups open to the world in the client's region.
pub async fn open_groups(ec2: &aws_sdk_ec2::Client) -> Result<Vec<OpenGroup>, OpsError> {
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let page = ec2
            .describe_security_groups()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for group in page.security_groups() {
            // The widest exposure of the group counts once.
            let widest = group
                .ip_permissions()
                .iter()
                .filter_map(exposure)
                .min_by_key(|e| match e {
                    Exposure::AllPorts => 0,
                    Exposure::Ssh => 1,
                    Exposure::Rdp => 2,
                });
            if let Some(exposure) = widest {
                found.push(OpenGroup {
                    id: group.group_id().unwrap_or_default().to_owned(),
                    name: group.group_name().unwrap_or_default().to_owned(),
                    exposure,
                });
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The account's password policy, judged against the benchmark.
pub async fn password_policy(iam: &aws_sdk_iam::Client) -> Result<PasswordPolicy, OpsError> {
    let answer = match iam.get_account_password_policy().send().await {
        Ok(answer) => answer,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            return Ok(PasswordPolicy::Missing);
        }
        Err(error) => return Err(OpsError::from_sdk(error)),
    };
    let Some(policy) = answer.password_policy() else {
        return Ok(PasswordPolicy::Missing);
    };
    let mut missing = Vec::new();
    let length = policy.minimum_password_length().unwrap_or(8);
    if length < MIN_PASSWORD_LENGTH {
        missing.push(format!("only {length} characters"));
    }
    for (required, what) in [
        (policy.require_symbols(), "symbols"),
        (policy.require_numbers(), "numbers"),
        (policy.require_uppercase_characters(), "capitals"),
        (policy.require_lowercase_characters(), "lower-case letters"),
    ] {
        if !required {
            missing.push(format!("no {what}"));
        }
    }
    Ok(if missing.is_empty() {
        PasswordPolicy::Strong
    } else {
        PasswordPolicy::Weak(missing)
    })
}

/// Active access keys older than `age_days` at `now`, of every IAM user.
pub async fn old_keys(
    iam: &aws_sdk_iam::Client,
    now: time::OffsetDateTime,
    age_days: i64,
) -> Result<Vec<OldKey>, OpsError> {
    let mut users = Vec::new();
    let mut marker = None;
    loop {
        let page = iam
            .list_users()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        users.extend(page.users().iter().map(|u| u.user_name().to_owned()));
        match page.marker() {
            Some(next) if page.is_truncated() && !next.is_empty() => marker = Some(next.to_owned()),
            _ => break,
        }
    }
    let mut found = Vec::new();
    for user in users {
        let keys = iam
            .list_access_keys()
            .user_name(&user)
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for key in keys.access_key_metadata() {
            if key.status().map(|s| s.as_str()) != Some("Active") {
                continue;
            }
            let Some(created) = key.create_date() else {
                continue;
            };
            let age_seconds = now.unix_timestamp() - created.secs();
            if age_seconds > age_days * 86_400 {
                let id = key.access_key_id().unwrap_or_default();
                found.push(OldKey {
                    user: user.clone(),
                    key_end: id
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect(),
                    age_days: age_seconds / 86_400,
                });
            }
        }
    }
    Ok(found)
}

/// The whole check in one account and region.
pub async fn check(
    session: &AwsSession,
    region: &str,
    now: time::OffsetDateTime,
    key_age_days: i64,
) -> Result<Findings, OpsError> {
    let iam = aws_sdk_iam::Client::new(&session.config(Some("us-east-1"), false));
    Ok(Findings {
        open_groups: open_groups(&session.ec2(Some(region))).await?,
        password_policy: password_policy(&iam).await?,
        old_keys: old_keys(&iam, now, key_age_days).await?,
        key_age_days,
    })
}

/// The security family.
#[derive(Debug)]
pub struct Security;

#[async_trait::async_trait]
impl Family for Security {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    /// "run a security check".
    async fn answer(&self, _: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let region = match ask.region() {
            Ok(region) => region,
            Err(answer) => return answer,
        };
        let (now, age) = (ask.now, ask.settings.key_age.whole_days());
        let reached = ask
            .each_account(&policy(), region.as_ref(), |session, region| async move {
                check(&session, &region, now, age).await
            })
            .await;
        let card = reached
            .iter()
            .flat_map(|r| card_section(r, card_lines))
            .collect::<Vec<_>>()
            .join("\n");
        match ask.scoped(reached, |_, findings| findings.clone()) {
            Ok(scoped) => Answer::Say {
                reply: Reply::Security(scoped),
                card: Some(card),
            },
            Err(answer) => answer,
        }
    }
}

fn card_lines(findings: &Findings) -> Vec<String> {
    let mut lines = Vec::new();
    for group in &findings.open_groups {
        lines.push(format!(
            "{} ({}) open to the world on {}",
            group.name,
            group.id,
            match group.exposure {
                Exposure::Ssh => "SSH (22)",
                Exposure::Rdp => "RDP (3389)",
                Exposure::AllPorts => "all ports",
            }
        ));
    }
    lines.push(match &findings.password_policy {
        PasswordPolicy::Missing => "password policy: none set".to_owned(),
        PasswordPolicy::Weak(missing) => format!("password policy: {}", missing.join(", ")),
        PasswordPolicy::Strong => "password policy: strong".to_owned(),
    });
    for key in &findings.old_keys {
        lines.push(format!(
            "access key …{} of {} is {} days old",
            key.key_end, key.user, key.age_days
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::IpRange;

    fn rule(protocol: &str, from: i32, to: i32, cidr: &str) -> IpPermission {
        IpPermission::builder()
            .ip_protocol(protocol)
            .from_port(from)
            .to_port(to)
            .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
            .build()
    }

    #[test]
    fn only_rules_open_to_the_world_on_risky_ports_count() {
        assert_eq!(
            exposure(&rule("tcp", 22, 22, "0.0.0.0/0")),
            Some(Exposure::Ssh)
        );
        assert_eq!(
            exposure(&rule("tcp", 3389, 3389, "0.0.0.0/0")),
            Some(Exposure::Rdp)
        );
        assert_eq!(
            exposure(&rule("-1", 0, 0, "0.0.0.0/0")),
            Some(Exposure::AllPorts)
        );
        assert_eq!(
            exposure(&rule("tcp", 0, 65535, "0.0.0.0/0")),
            Some(Exposure::AllPorts)
        );
        assert_eq!(
            exposure(&rule("tcp", 20, 30, "0.0.0.0/0")),
            Some(Exposure::Ssh)
        );
        assert_eq!(exposure(&rule("tcp", 443, 443, "0.0.0.0/0")), None);
        assert_eq!(exposure(&rule("tcp", 22, 22, "10.0.0.0/8")), None);
    }
}
