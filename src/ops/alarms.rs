//! CloudWatch alarms: "which alarms are firing" (read, per account and region) and "alert
//! me when the web server's CPU is over 80 percent" (critical: creates, or updates, the
//! CPU alarm `voxgate-cpu-<instance id>` of a managed instance; 1 to 100 percent only).
//!
//! The alarm has no actions: it shows up as firing (here, in the console and in "which
//! alarms are firing"); wiring it to a notification topic is left to the account's owner.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};

use super::ask::{Answer, Ask, card_section};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, REGION, Report, SlotSpec,
    sha256_hex,
};
use super::instances::{self, INSTANCE};
use super::reply::Reply;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::arn::Region;
use crate::cloud::broker::AwsSession;

/// The kind CPU alarms are stored under.
pub const KIND: &str = "cloudwatch-cpu-alarm";

/// The slot with the threshold, in percent.
pub const PERCENT_SLOT: &str = "percent";

const PERCENT: SlotSpec = SlotSpec {
    name: PERCENT_SLOT,
    slot_type: "AMAZON.NUMBER",
};

/// The alarm family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "alarms.firing",
        intent: "AlarmsFiringIntent",
        slots: &[REGION],
        criticality: Criticality::Read,
        iam_actions: &["cloudwatch:DescribeAlarms", "ec2:DescribeInstances"],
    },
    Declaration {
        name: "alarms.cpu",
        intent: "CpuAlarmIntent",
        slots: &[INSTANCE, PERCENT, REGION],
        criticality: Criticality::Critical,
        iam_actions: &[
            "ec2:DescribeInstances",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricAlarm",
        ],
    },
];

/// The session policy of the reads (DescribeAlarms has no resource-level permissions for a
/// listing).
pub fn read_policy() -> SessionPolicy {
    SessionPolicy::allow(&["cloudwatch:DescribeAlarms"], &["*"])
}

/// An alarm that is firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Its name.
    pub name: String,
    /// The metric it watches ("CPUUtilization"), if any.
    pub metric: Option<String>,
    /// The instance it watches (its `InstanceId` dimension), if any.
    pub instance_id: Option<String>,
}

impl Firing {
    /// What people call it: "web-1's CPU alarm" for voxgate's own alarms (whose names carry
    /// an instance id nobody says), else its name.
    pub fn spoken(&self, instances: &[instances::InstanceInfo]) -> String {
        let instance = self
            .instance_id
            .as_ref()
            .and_then(|id| instances.iter().find(|i| i.id == *id));
        match instance {
            Some(instance) if self.name.starts_with("voxgate-cpu-") => {
                format!("{}'s CPU alarm", instance.label())
            }
            _ => self.name.clone(),
        }
    }
}

fn client(session: &AwsSession, region: &str, change: bool) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&session.config(Some(region), change))
}

/// Every metric alarm in the ALARM state in `region`, by name.
pub async fn firing(session: &AwsSession, region: &str) -> Result<Vec<Firing>, OpsError> {
    let client = client(session, region, false);
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .describe_alarms()
            .state_value(StateValue::Alarm)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        found.extend(page.metric_alarms().iter().map(|a| {
            Firing {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                metric: a.metric_name().map(str::to_owned),
                instance_id: a
                    .dimensions()
                    .iter()
                    .find(|d| d.name() == Some("InstanceId"))
                    .and_then(|d| d.value().map(str::to_owned)),
            }
        }));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The threshold of the alarm `name` in `region`, if it exists.
async fn threshold_of(
    session: &AwsSession,
    region: &str,
    name: &str,
) -> Result<Option<f64>, OpsError> {
    let answer = client(session, region, false)
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    Ok(answer
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(name))
        .map(|a| a.threshold().unwrap_or(0.0)))
}

/// The alarm family.
#[derive(Debug)]
pub struct Alarms;

#[async_trait::async_trait]
impl Family for Alarms {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let result = match declaration.name {
            "alarms.cpu" => cpu_alarm(ask).await,
            _ => list_firing(ask).await,
        };
        result.unwrap_or_else(|answer| answer)
    }
}

/// "which alarms are firing": named as people call them.
async fn list_firing(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let region = ask.region()?;
    let policy = read_policy().and(instances::list_instances_policy());
    let reached = ask
        .each_account(&policy, region.as_ref(), |session, region| async move {
            let alarms = firing(&session, &region).await?;
            // Instance names only when an alarm watches an instance.
            let instances = if alarms.iter().any(|a| a.instance_id.is_some()) {
                instances::list_instances(&session.ec2(Some(&region))).await?
            } else {
                Vec::new()
            };
            Ok(alarms
                .into_iter()
                .map(|a| (a.spoken(&instances), a))
                .collect::<Vec<_>>())
        })
        .await;
    let card = reached
        .iter()
        .flat_map(|r| {
            card_section(r, |alarms| {
                if alarms.is_empty() {
                    return vec!["no alarm is firing".to_owned()];
                }
                alarms
                    .iter()
                    .map(|(_, a)| match &a.metric {
                        Some(metric) => format!("{} ({metric})", a.name),
                        None => a.name.clone(),
                    })
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .join("\n");
    let scoped = ask.scoped(reached, |_, alarms| {
        alarms.iter().map(|(spoken, _)| spoken.clone()).collect()
    })?;
    Ok(Answer::Say {
        reply: Reply::AlarmsFiring(scoped),
        card: Some(card),
    })
}

/// "alert me when the web server's CPU is over 80 percent".
async fn cpu_alarm(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let percent = match ask.whole_number(PERCENT_SLOT, 1..=100) {
        Ok(Some(percent)) => percent,
        Ok(None) => {
            return Err(Answer::Elicit {
                reply: Reply::AskPercent,
                slot: PERCENT_SLOT,
                context: None,
            });
        }
        Err(spoken) => {
            return Err(Answer::Elicit {
                reply: Reply::BadPercent { spoken },
                slot: PERCENT_SLOT,
                context: None,
            });
        }
    };
    let found = instances::named(ask).await?;
    let name = format!("voxgate-cpu-{}", found.instance.id);
    let session = ask
        .sessions
        .session(&found.account, &read_policy())
        .await
        .map_err(|e| {
            Answer::Trouble(
                Box::new(found.account.clone()),
                super::ask::Trouble::Session(e),
            )
        })?;
    let previous = threshold_of(&session, &found.region, &name)
        .await
        .map_err(|e| Answer::Trouble(Box::new(found.account.clone()), e.into()))?
        .map(|t| t.round() as u64);
    let op = AlarmOperation {
        account_id: found.account.id.as_str().to_owned(),
        account_name: found.account.name.clone(),
        region: found.region.clone(),
        instance_id: found.instance.id.clone(),
        instance_name: found.instance.label().to_owned(),
        percent,
        previous,
    };
    if previous == Some(percent) {
        return Ok(Answer::say(Reply::AlarmAlready {
            name: op.instance_name,
            percent,
        }));
    }
    let name = op.instance_name.clone();
    Ok(ask.hold_if_managed(
        ask.managed.marks(&found.instance.tags),
        &name,
        Operation::Alarm(op),
    ))
}

/// Creating or updating the CPU alarm of one managed instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmOperation {
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
    /// The threshold, 1 to 100 percent average CPU over five minutes.
    pub percent: u64,
    /// The alarm's threshold when the person asked, if it existed.
    pub previous: Option<u64>,
}

impl AlarmOperation {
    /// The alarm's name: one per instance.
    pub fn alarm_name(&self) -> String {
        format!("voxgate-cpu-{}", self.instance_id)
    }
}

#[async_trait::async_trait]
impl Critical for AlarmOperation {
    super::catalog::critical_identity!(KIND);

    /// "Alert when web-1's CPU is over 80 percent, in prod, Ireland (now 90 percent)".
    fn summary(&self) -> String {
        let now = self
            .previous
            .map(|p| format!(" (now {p} percent)"))
            .unwrap_or_default();
        format!(
            "Alert when {}'s CPU is over {} percent, in {}, {}{now}",
            self.instance_name,
            self.percent,
            self.account_name,
            Region::words(&self.region)
        )
    }

    fn well_formed(&self) -> bool {
        super::catalog::region_code(&self.region)
            && super::catalog::aws_id(&self.instance_id, "i-")
            && (1..=100).contains(&self.percent)
    }

    fn digest(&self) -> String {
        sha256_hex(&format!(
            "voxgate-cpu-alarm-v1\naccount={}\nregion={}\ninstance={}\npercent={}\nprevious={}\n",
            self.account_id,
            self.region,
            self.instance_id,
            self.percent,
            self.previous
                .map_or_else(|| "-".to_owned(), |p| p.to_string())
        ))
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Action", "Set CPU alarm".to_owned()),
            (
                "Instance",
                format!("{} ({})", self.instance_name, self.instance_id),
            ),
            ("Alarm", self.alarm_name()),
            (
                "Threshold",
                format!("average CPU over {}% for 5 minutes", self.percent),
            ),
        ]
    }

    fn guard_policy(&self) -> SessionPolicy {
        instances::list_instances_policy().and(read_policy())
    }

    /// Exactly this alarm. (CloudWatch cannot condition a new alarm on the instance's tag;
    /// the guard checks the instance just before.)
    fn policy(&self, aws_account: &str, _managed: &ManagedTag) -> SessionPolicy {
        SessionPolicy::allow(
            &["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"],
            &[&format!(
                "arn:aws:cloudwatch:{}:{aws_account}:alarm:{}",
                self.region,
                self.alarm_name()
            )],
        )
    }

    /// The instance must still carry the managed tag, and the alarm still be what the
    /// person heard.
    async fn guard(
        &self,
        read: &AwsSession,
        managed: &ManagedTag,
        _now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        match instances::describe_instance(&read.ec2(Some(&self.region)), &self.instance_id).await?
        {
            Some(instance) if managed.marks(&instance.tags) => {}
            _ => return Ok(Guard::NotManaged),
        }
        let now = threshold_of(read, &self.region, &self.alarm_name())
            .await?
            .map(|t| t.round() as u64);
        Ok(if now == self.previous {
            Guard::Clear
        } else {
            Guard::Changed("the alarm changed since approval".into())
        })
    }

    async fn execute(
        &self,
        session: &AwsSession,
        _deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        use aws_sdk_cloudwatch::operation::RequestId as _;
        // PutMetricAlarm replaces the whole alarm: the notifications its owner wired to it
        // are carried over, not dropped.
        let existing = client(session, &self.region, false)
            .describe_alarms()
            .alarm_names(self.alarm_name())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        let existing = existing
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(self.alarm_name().as_str()));
        let kept =
            |actions: Option<&[String]>| actions.map(<[String]>::to_vec).filter(|a| !a.is_empty());
        let request_id = client(session, &self.region, true)
            .put_metric_alarm()
            .set_alarm_actions(kept(existing.map(|a| a.alarm_actions())))
            .set_ok_actions(kept(existing.map(|a| a.ok_actions())))
            .set_insufficient_data_actions(kept(existing.map(|a| a.insufficient_data_actions())))
            .alarm_name(self.alarm_name())
            .alarm_description(format!(
                "Set by voice through voxgate: average CPU of {} over {}%",
                self.instance_name, self.percent
            ))
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .dimensions(
                Dimension::builder()
                    .name("InstanceId")
                    .value(&self.instance_id)
                    .build(),
            )
            .statistic(Statistic::Average)
            .period(300)
            .evaluation_periods(1)
            .threshold(self.percent as f64)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .map_err(OpsError::from_sdk_change)?
            .request_id()
            .map(str::to_owned);
        Ok(Done {
            request_id,
            report: Report::Alarm(self.clone()),
        })
    }
}

/// A new alarm and an update, for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    vec![
        Operation::Alarm(tests::op()),
        Operation::Alarm(AlarmOperation {
            previous: Some(90),
            ..tests::op()
        }),
    ]
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = tests::op();
    let with = |f: &dyn Fn(&mut AlarmOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::Alarm(op)
    };
    vec![
        (
            Operation::Alarm(base.clone()),
            with(&|op| op.percent = 81),
            Some(with(&|op| op.instance_name = "web-one".into())),
        ),
        (
            Operation::Alarm(base.clone()),
            with(&|op| op.instance_id.push('0')),
            None,
        ),
        (
            Operation::Alarm(base.clone()),
            with(&|op| op.region = "eu-west-2".into()),
            None,
        ),
        (
            Operation::Alarm(base.clone()),
            with(&|op| op.previous = Some(70)),
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn op() -> AlarmOperation {
        AlarmOperation {
            account_id: "a_1".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            instance_id: "i-0abc1234567890def".into(),
            instance_name: "web-1".into(),
            percent: 80,
            previous: None,
        }
    }

    #[test]
    fn the_summary_says_instance_threshold_and_place() {
        assert_eq!(
            op().summary(),
            "Alert when web-1's CPU is over 80 percent, in prod, Ireland"
        );
    }

    #[test]
    fn the_session_policy_names_exactly_the_alarm() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let doc: serde_json::Value =
            serde_json::from_str(&op().policy("111122223333", &tag).to_json()).expect("json");
        assert_eq!(
            doc["Statement"][0]["Resource"],
            serde_json::json!([
                "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:voxgate-cpu-i-0abc1234567890def"
            ])
        );
    }
}
