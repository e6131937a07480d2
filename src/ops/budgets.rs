//! Budgets: "what's my monthly budget" (read: each monthly cost budget, its limit and how
//! much of it is used) and "set my monthly budget to 500 dollars" (critical: the amount is
//! in the digest, so a code for 500 never approves 5,000; the account's one monthly cost
//! budget is updated, or `voxgate-monthly` created when it has none).
//!
//! Budgets is account-wide (its API lives in us-east-1) and has no managed-tag condition;
//! the guard instead checks that the budget is still what the person heard ("now 400
//! dollars"), and the session policy names exactly that budget.

use aws_sdk_budgets::types::{Budget, BudgetType, Spend, TimeUnit};

use super::ask::{ACCOUNT_SLOT, Answer, Ask, card_section};
use super::catalog::{
    Critical, Criticality, Declaration, Done, Family, Guard, Operation, Report, SlotSpec,
    sha256_hex,
};
use super::reply::Reply;
use super::words::thousands;
use super::{ManagedTag, OpsError, SessionPolicy};
use crate::cloud::broker::AwsSession;

/// The kind budget changes are stored under.
pub const KIND: &str = "budget-limit";

/// Where the Budgets API lives.
const BUDGETS_REGION: &str = "us-east-1";

/// The budget voxgate creates when an account has no monthly cost budget.
pub const NEW_BUDGET_NAME: &str = "voxgate-monthly";

/// The largest monthly budget voxgate sets, in dollars.
pub const MAX_BUDGET: u64 = 1_000_000;

/// The slot with the amount, in dollars.
pub const AMOUNT_SLOT: &str = "amount";

const AMOUNT: SlotSpec = SlotSpec {
    name: AMOUNT_SLOT,
    slot_type: "AMAZON.NUMBER",
};

/// The slot naming the account.
pub const ACCOUNT: SlotSpec = SlotSpec {
    name: ACCOUNT_SLOT,
    slot_type: "ACCOUNT_NAME",
};

/// The budget family's operations.
pub const DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "budgets.status",
        intent: "BudgetStatusIntent",
        slots: &[],
        criticality: Criticality::Read,
        iam_actions: &["budgets:ViewBudget"],
    },
    Declaration {
        name: "budgets.set",
        intent: "SetBudgetIntent",
        slots: &[AMOUNT, ACCOUNT],
        criticality: Criticality::Critical,
        iam_actions: &["budgets:ViewBudget", "budgets:ModifyBudget"],
    },
];

/// The session policy of the reads (Budgets has no account-less resource for them).
pub fn read_policy() -> SessionPolicy {
    SessionPolicy::allow(&["budgets:ViewBudget"], &["*"])
}

/// A monthly cost budget as voxgate says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetInfo {
    /// Its name.
    pub name: String,
    /// The limit, exactly as AWS stores it ("500.0").
    pub limit: String,
    /// The limit in hundredths of `unit`.
    pub limit_hundredths: u64,
    /// What was spent this month, in hundredths, if AWS has computed it.
    pub spent_hundredths: Option<u64>,
    /// The currency ("USD").
    pub unit: String,
}

impl BudgetInfo {
    /// Percent of the limit used, rounded, if known.
    pub fn percent_used(&self) -> Option<u64> {
        let spent = self.spent_hundredths?;
        (self.limit_hundredths > 0)
            .then(|| (spent * 100 + self.limit_hundredths / 2) / self.limit_hundredths)
    }
}

/// "500.0" → 50000 hundredths.
fn hundredths(amount: &str) -> Option<u64> {
    let value: f64 = amount.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * 100.0).round() as u64)
}

/// Every monthly cost budget of the session's account, by name.
pub async fn monthly_budgets(session: &AwsSession) -> Result<Vec<BudgetInfo>, OpsError> {
    let client = aws_sdk_budgets::Client::new(&session.config(Some(BUDGETS_REGION), false));
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .describe_budgets()
            .account_id(session.aws_account())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(OpsError::from_sdk)?;
        for budget in page.budgets() {
            if *budget.time_unit() != TimeUnit::Monthly || *budget.budget_type() != BudgetType::Cost
            {
                continue;
            }
            let Some(limit) = budget.budget_limit() else {
                continue;
            };
            found.push(BudgetInfo {
                name: budget.budget_name().to_owned(),
                limit: limit.amount().to_owned(),
                limit_hundredths: hundredths(limit.amount()).unwrap_or(0),
                spent_hundredths: budget
                    .calculated_spend()
                    .and_then(|c| c.actual_spend())
                    .and_then(|s| hundredths(s.amount())),
                unit: limit.unit().to_owned(),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The budget family.
#[derive(Debug)]
pub struct Budgets;

#[async_trait::async_trait]
impl Family for Budgets {
    fn declarations(&self) -> &'static [Declaration] {
        DECLARATIONS
    }

    async fn answer(&self, declaration: &'static Declaration, ask: &Ask<'_>) -> Answer {
        let result = match declaration.name {
            "budgets.set" => set(ask).await,
            _ => status(ask).await,
        };
        result.unwrap_or_else(|answer| answer)
    }
}

/// "what's my monthly budget": each account's monthly budgets and how much is used.
async fn status(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let reached = ask
        .each_account(&read_policy(), None, |session, _| async move {
            monthly_budgets(&session).await
        })
        .await;
    let card = reached
        .iter()
        .flat_map(|r| {
            card_section(r, |budgets| {
                if budgets.is_empty() {
                    return vec!["no monthly cost budget".to_owned()];
                }
                budgets
                    .iter()
                    .map(|b| {
                        format!(
                            "{}: {} {} a month, {} used",
                            b.name,
                            b.limit,
                            b.unit,
                            b.percent_used()
                                .map_or_else(|| "unknown".to_owned(), |p| format!("{p}%"))
                        )
                    })
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut scoped = ask.scoped(reached, |_, budgets| budgets.clone())?;
    // Budgets are account-wide: no region to say.
    for s in &mut scoped {
        s.scope.region.clear();
    }
    Ok(Answer::Say {
        reply: Reply::Budgets(scoped),
        card: Some(card),
    })
}

/// "set my monthly budget to 500 dollars": the amount must be a whole number of dollars
/// from 1 to [`MAX_BUDGET`]; otherwise voxgate asks again.
async fn set(ask: &Ask<'_>) -> Result<Answer, Answer> {
    let amount = match ask.whole_number(AMOUNT_SLOT, 1..=MAX_BUDGET) {
        Ok(Some(amount)) => amount,
        Ok(None) => {
            return Err(Answer::Elicit {
                reply: Reply::AskAmount,
                slot: AMOUNT_SLOT,
                context: None,
            });
        }
        Err(spoken) => {
            return Err(Answer::Elicit {
                reply: Reply::BadAmount { spoken },
                slot: AMOUNT_SLOT,
                context: None,
            });
        }
    };
    let account = ask.one_account()?;
    let session = ask
        .sessions
        .session(account, &read_policy())
        .await
        .map_err(|e| Answer::Trouble(Box::new(account.clone()), super::ask::Trouble::Session(e)))?;
    let budgets = monthly_budgets(&session)
        .await
        .map_err(|e| Answer::Trouble(Box::new(account.clone()), e.into()))?;
    let current = match budgets.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        several => match several.iter().find(|b| b.name == NEW_BUDGET_NAME) {
            Some(ours) => Some(ours.clone()),
            None => {
                return Ok(Answer::say(Reply::SeveralBudgets {
                    account: account.name.clone(),
                    count: several.len(),
                }));
            }
        },
    };
    if let Some(current) = &current
        && current.unit != "USD"
    {
        return Ok(Answer::say(Reply::BudgetCurrency {
            account: account.name.clone(),
            unit: current.unit.clone(),
        }));
    }
    if let Some(current) = &current
        && current.limit_hundredths == amount * 100
    {
        return Ok(Answer::say(Reply::BudgetAlready {
            account: account.name.clone(),
            amount,
        }));
    }
    Ok(Answer::Hold(Box::new(Operation::Budget(BudgetOperation {
        account_id: account.id.as_str().to_owned(),
        account_name: account.name.clone(),
        budget_name: current
            .as_ref()
            .map_or_else(|| NEW_BUDGET_NAME.to_owned(), |b| b.name.clone()),
        amount,
        previous: current.map(|b| b.limit),
    }))))
}

/// Setting one account's monthly cost budget, with every parameter that defines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOperation {
    /// voxgate's id of the linked account.
    pub account_id: String,
    /// Its label ("prod").
    pub account_name: String,
    /// The budget to set (created when `previous` is `None`).
    pub budget_name: String,
    /// The new monthly limit, in whole US dollars.
    pub amount: u64,
    /// The limit it had when the person asked, exactly as AWS stored it; `None` when there
    /// was no budget.
    pub previous: Option<String>,
}

impl BudgetOperation {
    fn dollars(amount: u64) -> String {
        format!(
            "{} dollar{}",
            thousands(amount),
            if amount == 1 { "" } else { "s" }
        )
    }

    fn limit(&self) -> Result<Spend, OpsError> {
        Spend::builder()
            .amount(self.amount.to_string())
            .unit("USD")
            .build()
            .map_err(|_| OpsError::Aws {
                code: "Unsent".into(),
                message: "the budget limit could not be built".into(),
            })
    }

    fn arn(&self, aws_account: &str) -> String {
        format!("arn:aws:budgets::{aws_account}:budget/{}", self.budget_name)
    }
}

#[async_trait::async_trait]
impl Critical for BudgetOperation {
    super::catalog::critical_identity!(KIND, global);

    /// "Set the monthly budget of prod to 500 dollars (now 400 dollars)", or "Create a
    /// monthly budget of 500 dollars for prod".
    fn summary(&self) -> String {
        match self.previous.as_deref().and_then(hundredths) {
            Some(previous) => format!(
                "Set the monthly budget of {} to {} (now {})",
                self.account_name,
                Self::dollars(self.amount),
                Self::dollars((previous + 50) / 100)
            ),
            None => format!(
                "Create a monthly budget of {} for {}",
                Self::dollars(self.amount),
                self.account_name
            ),
        }
    }

    fn well_formed(&self) -> bool {
        // Budget names take letters, digits and a few marks; never a wildcard.
        !self.budget_name.is_empty()
            && self.budget_name.len() <= 100
            && self
                .budget_name
                .chars()
                .all(|c| c.is_alphanumeric() || " -_.:()".contains(c))
            && (1..=MAX_BUDGET).contains(&self.amount)
    }

    fn digest(&self) -> String {
        sha256_hex(&format!(
            "voxgate-budget-v1\naccount={}\nbudget={}\namount={}\ncurrency=USD\nprevious={}\n",
            self.account_id,
            self.budget_name,
            self.amount,
            self.previous.as_deref().unwrap_or("-")
        ))
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Action", "Set monthly budget".to_owned()),
            ("Budget", self.budget_name.clone()),
            ("Amount", format!("{} USD a month", thousands(self.amount))),
            (
                "Now",
                self.previous
                    .as_ref()
                    .map_or_else(|| "no budget".to_owned(), |p| format!("{p} USD")),
            ),
        ]
    }

    fn guard_policy(&self) -> SessionPolicy {
        read_policy()
    }

    /// Viewing and changing exactly this budget.
    fn policy(&self, aws_account: &str, _managed: &ManagedTag) -> SessionPolicy {
        SessionPolicy::allow(
            &["budgets:ViewBudget", "budgets:ModifyBudget"],
            &[&self.arn(aws_account)],
        )
    }

    /// The budget must still be what the person heard: absent for a creation, at the
    /// limit they heard for an update.
    async fn guard(
        &self,
        read: &AwsSession,
        _managed: &ManagedTag,
        _now: time::OffsetDateTime,
    ) -> Result<Guard, OpsError> {
        let budgets = monthly_budgets(read).await?;
        let now = budgets.iter().find(|b| b.name == self.budget_name);
        Ok(match (now, &self.previous) {
            (None, None) => Guard::Clear,
            (Some(now), Some(previous)) if now.limit == *previous => Guard::Clear,
            (Some(_), None) => Guard::Changed("a budget of that name was created".into()),
            (None, Some(_)) => Guard::Changed("the budget is gone".into()),
            (Some(_), Some(_)) => Guard::Changed("the budget's limit changed".into()),
        })
    }

    /// Creates the budget, or replaces the limit of the existing one, keeping everything
    /// else it has (filters, cost types, period).
    async fn execute(
        &self,
        session: &AwsSession,
        _deadline: tokio::time::Instant,
    ) -> Result<Done, OpsError> {
        use aws_sdk_budgets::operation::RequestId as _;
        let change = aws_sdk_budgets::Client::new(&session.config(Some(BUDGETS_REGION), true));
        let request_id = match &self.previous {
            None => {
                let budget = Budget::builder()
                    .budget_name(&self.budget_name)
                    .budget_limit(self.limit()?)
                    .time_unit(TimeUnit::Monthly)
                    .budget_type(BudgetType::Cost)
                    .build()
                    .map_err(|_| OpsError::Aws {
                        code: "Unsent".into(),
                        message: "the budget could not be built".into(),
                    })?;
                change
                    .create_budget()
                    .account_id(session.aws_account())
                    .budget(budget)
                    .send()
                    .await
                    .map_err(OpsError::from_sdk_change)?
                    .request_id()
                    .map(str::to_owned)
            }
            Some(_) => {
                let read =
                    aws_sdk_budgets::Client::new(&session.config(Some(BUDGETS_REGION), false));
                let existing = read
                    .describe_budget()
                    .account_id(session.aws_account())
                    .budget_name(&self.budget_name)
                    .send()
                    .await
                    .map_err(OpsError::from_sdk)?;
                let Some(existing) = existing.budget() else {
                    return Err(OpsError::Aws {
                        code: "NotFound".into(),
                        message: "the budget is gone".into(),
                    });
                };
                // A budget with a limit per month ahead is not one number: left alone.
                if existing
                    .planned_budget_limits()
                    .is_some_and(|planned| !planned.is_empty())
                {
                    return Err(OpsError::Aws {
                        code: "Unsent".into(),
                        message: "the budget has planned limits per month; not changed".into(),
                    });
                }
                // Older budgets keep their filters in the deprecated fields; copying them
                // keeps what the budget counts.
                #[allow(deprecated)]
                let builder = Budget::builder()
                    .set_cost_filters(existing.cost_filters().cloned())
                    .set_cost_types(existing.cost_types().cloned());
                let budget = builder
                    .budget_name(existing.budget_name())
                    .budget_limit(self.limit()?)
                    .set_filter_expression(existing.filter_expression().cloned())
                    .set_auto_adjust_data(existing.auto_adjust_data().cloned())
                    .set_metrics(Some(existing.metrics().to_vec()).filter(|m| !m.is_empty()))
                    .time_unit(existing.time_unit().clone())
                    .set_time_period(existing.time_period().cloned())
                    .budget_type(existing.budget_type().clone())
                    .build()
                    .map_err(|_| OpsError::Aws {
                        code: "Unsent".into(),
                        message: "the budget could not be built".into(),
                    })?;
                change
                    .update_budget()
                    .account_id(session.aws_account())
                    .new_budget(budget)
                    .send()
                    .await
                    .map_err(OpsError::from_sdk_change)?
                    .request_id()
                    .map(str::to_owned)
            }
        };
        Ok(Done {
            request_id,
            report: Report::Budget(self.clone()),
        })
    }
}

/// One creation and one update, for the catalog's tests.
#[cfg(test)]
pub(super) fn examples() -> Vec<Operation> {
    let update = tests::op();
    let create = BudgetOperation {
        previous: None,
        budget_name: NEW_BUDGET_NAME.into(),
        ..update.clone()
    };
    vec![Operation::Budget(update), Operation::Budget(create)]
}

/// (base, one parameter changed, only a label changed) triples for the catalog's tests.
#[cfg(test)]
pub(super) fn variations() -> Vec<(Operation, Operation, Option<Operation>)> {
    let base = tests::op();
    let with = |f: &dyn Fn(&mut BudgetOperation)| {
        let mut op = base.clone();
        f(&mut op);
        Operation::Budget(op)
    };
    vec![
        (
            Operation::Budget(base.clone()),
            with(&|op| op.amount = 5000),
            Some(with(&|op| op.account_name = "production".into())),
        ),
        (
            Operation::Budget(base.clone()),
            with(&|op| op.budget_name = "other".into()),
            None,
        ),
        (
            Operation::Budget(base.clone()),
            with(&|op| op.previous = None),
            None,
        ),
        (
            Operation::Budget(base.clone()),
            with(&|op| op.account_id = "a_2".into()),
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn op() -> BudgetOperation {
        BudgetOperation {
            account_id: "a_1".into(),
            account_name: "prod".into(),
            budget_name: "monthly".into(),
            amount: 500,
            previous: Some("400.0".into()),
        }
    }

    #[test]
    fn summaries_say_the_amount_and_what_it_was() {
        assert_eq!(
            op().summary(),
            "Set the monthly budget of prod to 500 dollars (now 400 dollars)"
        );
        let create = BudgetOperation {
            previous: None,
            amount: 1500,
            ..op()
        };
        assert_eq!(
            create.summary(),
            "Create a monthly budget of 1,500 dollars for prod"
        );
    }

    #[test]
    fn the_session_policy_names_exactly_the_budget() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("tag");
        let doc: serde_json::Value =
            serde_json::from_str(&op().policy("111122223333", &tag).to_json()).expect("json");
        assert_eq!(
            doc["Statement"][0]["Resource"],
            serde_json::json!(["arn:aws:budgets::111122223333:budget/monthly"])
        );
    }

    #[test]
    fn amounts_are_read_as_aws_writes_them() {
        assert_eq!(hundredths("500.0"), Some(50_000));
        assert_eq!(hundredths("42.129"), Some(4_213));
        assert_eq!(hundredths("-1"), None);
        assert_eq!(hundredths("lots"), None);
    }
}
