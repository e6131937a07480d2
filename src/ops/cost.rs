//! Cost (read): "how much have I spent this month", from Cost Explorer (unblended cost from
//! the first of the month to today), in the account's currency, rounded as a person would
//! say it.

use aws_sdk_costexplorer::types::{DateInterval, Granularity};

use super::ask::{Answer, Ask, card_section};
use super::catalog::{Criticality, Declaration, Family};
use super::reply::Reply;
use super::{OpsError, SessionPolicy};
use crate::cloud::broker::AwsSession;

/// The cost family's operations.
pub const DECLARATIONS: &[Declaration] = &[Declaration {
    name: "cost.month",
    intent: "MonthCostIntent",
    slots: &[],
    criticality: Criticality::Read,
    iam_actions: &["ce:GetCostAndUsage"],
}];

/// The session policy of the read.
pub fn policy() -> SessionPolicy {
    SessionPolicy::allow(&["ce:GetCostAndUsage"], &["*"])
}

/// What an account spent this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthToDate {
    /// In hundredths of `unit`.
    pub hundredths: u64,
    /// The currency ("USD").
    pub unit: String,
    /// Whether AWS marks it as an estimate (the month is not closed).
    pub estimated: bool,
}

/// Unblended cost from the first of `now`'s month to the end of today.
pub async fn month_to_date(
    session: &AwsSession,
    now: time::OffsetDateTime,
) -> Result<MonthToDate, OpsError> {
    let today = now.date();
    let start = today.replace_day(1).unwrap_or(today);
    let end = today.next_day().unwrap_or(today);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let unsent = |_| OpsError::Aws {
        code: "Unsent".into(),
        message: "the period could not be written".into(),
    };
    let period = DateInterval::builder()
        .start(start.format(&format).map_err(|e| unsent(e.to_string()))?)
        .end(end.format(&format).map_err(|e| unsent(e.to_string()))?)
        .build()
        .map_err(|e| unsent(e.to_string()))?;
    let answer = aws_sdk_costexplorer::Client::new(&session.config(Some("us-east-1"), false))
        .get_cost_and_usage()
        .time_period(period)
        .granularity(Granularity::Monthly)
        .metrics("UnblendedCost")
        .send()
        .await
        .map_err(OpsError::from_sdk)?;
    let mut spent = MonthToDate {
        hundredths: 0,
        unit: "USD".to_owned(),
        estimated: false,
    };
    for result in answer.results_by_time() {
        spent.estimated |= result.estimated();
        let Some(total) = result.total() else {
            continue;
        };
        // Moto and older answers may name the metric differently; take the one asked for,
        // else the only one there is.
        let metric = total
            .get("UnblendedCost")
            .or_else(|| (total.len() == 1).then(|| total.values().next()).flatten());
        if let Some(metric) = metric {
            let amount: f64 = metric.amount().unwrap_or("0").parse().unwrap_or(0.0);
            spent.hundredths += (amount.max(0.0) * 100.0).round() as u64;
            if let Some(unit) = metric.unit() {
                spent.unit = unit.to_owned();
            }
        }
    }
    Ok(spent)
}

/// The cost family.
#[derive(Debug)]
pub struct Cost;

#[async_trait::async_trait]
impl Family for Cost {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    /// "how much have I spent this month", per account.
    async fn answer(&self, _: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let now = ask.now;
        let reached = ask
            .each_account(&policy(), None, |session, _| async move {
                month_to_date(&session, now).await
            })
            .await;
        let card = reached
            .iter()
            .flat_map(|r| {
                card_section(r, |spent| {
                    vec![format!(
                        "{}.{:02} {} this month{}",
                        spent.hundredths / 100,
                        spent.hundredths % 100,
                        spent.unit,
                        if spent.estimated { " (estimated)" } else { "" }
                    )]
                })
            })
            .collect::<Vec<_>>()
            .join("\n");
        match ask.scoped(reached, |_, spent| spent.clone()) {
            Ok(mut scoped) => {
                // Costs are account-wide: no region to say.
                for s in &mut scoped {
                    s.scope.region.clear();
                }
                Answer::Say {
                    reply: Reply::MonthCost(scoped),
                    card: Some(card),
                }
            }
            Err(answer) => answer,
        }
    }
}
