//! What the families have to say, before it is put into words: the skill's speech catalog
//! has one sentence (per locale) for each variant.

use super::ask::Scoped;
use super::budgets::BudgetInfo;
use super::cleanup::Unused;
use super::cost::MonthToDate;
use super::instances::{InstanceCounts, InstanceState};
use super::security::Findings;
use super::ssm::AgentState;
use super::vpn::VpnConnection;

/// Something a family answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing could be looked at.
    NothingToSay,
    /// A region voxgate could not place.
    UnknownRegion {
        /// What was said.
        spoken: String,
    },
    /// What is running, per account and region.
    Instances(Vec<Scoped<InstanceCounts>>),
    /// One instance's state.
    InstanceState {
        /// Its name.
        name: String,
        /// Its state.
        state: InstanceState,
    },
    /// Asks which instance.
    WhichInstance,
    /// No instance has that name.
    InstanceNotFound {
        /// What was said.
        spoken: String,
        /// Some names that do exist.
        known: Vec<String>,
    },
    /// Several instances fit the name: which one?
    InstanceAmbiguous {
        /// What was said.
        spoken: String,
        /// The candidates, as they can be told apart.
        candidates: Vec<String>,
    },
    /// The answer to "which one?" still fit several (or none): voxgate stops asking.
    StillAmbiguous {
        /// The candidates.
        candidates: Vec<String>,
    },
    /// Some accounts could not be searched for the name, and the others have no match.
    InstanceNotFoundEverywhere {
        /// What was said.
        spoken: String,
    },
    /// The operation would change nothing, so it was not held.
    AlreadyInState {
        /// The instance.
        name: String,
        /// Its state.
        state: InstanceState,
    },
    /// The target lacks the managed tag.
    NotManaged {
        /// The resource's name.
        name: String,
        /// The tag, KEY=VALUE.
        tag: String,
    },
    /// What can be cleaned up, per account and region.
    CleanupReport(Vec<Scoped<Vec<Unused>>>),
    /// Nothing managed is unused: no cleanup to hold.
    NothingToClean {
        /// Unused resources without the managed tag (left alone).
        unmanaged: usize,
    },
    /// VPN connections and their tunnels, per account and region.
    Vpn(Vec<Scoped<Vec<VpnConnection>>>),
    /// Which account? (for an account-wide change, when the tenant has several)
    WhichAccount {
        /// The account labels.
        accounts: Vec<String>,
    },
    /// Asks for an amount in dollars.
    AskAmount,
    /// What was said is no amount voxgate takes; asks again.
    BadAmount {
        /// What was said.
        spoken: String,
    },
    /// Each account's monthly budgets (the region is left empty: budgets are account-wide).
    Budgets(Vec<Scoped<Vec<BudgetInfo>>>),
    /// The account has several monthly budgets and none is voxgate's: not changed by voice.
    SeveralBudgets {
        /// The account.
        account: String,
        /// How many.
        count: usize,
    },
    /// The budget already has that amount: nothing to hold.
    BudgetAlready {
        /// The account.
        account: String,
        /// The amount, in dollars.
        amount: u64,
    },
    /// The alarms firing, by name, per account and region.
    AlarmsFiring(Vec<Scoped<Vec<String>>>),
    /// Asks for a percentage.
    AskPercent,
    /// What was said is no percentage from 1 to 100; asks again.
    BadPercent {
        /// What was said.
        spoken: String,
    },
    /// The CPU alarm already has that threshold: nothing to hold.
    AlarmAlready {
        /// The instance.
        name: String,
        /// The threshold.
        percent: u64,
    },
    /// The SSM agent of an instance.
    SsmAgent {
        /// The instance.
        name: String,
        /// What SSM knows of its agent.
        state: AgentState,
    },
    /// The latest health check of an instance.
    HealthCheckStatus {
        /// The instance.
        name: String,
        /// Its command's status ("Success", "InProgress", …), if one was ever sent.
        status: Option<String>,
    },
    /// Which site? (several distributions fit)
    WhichSite {
        /// Their names.
        sites: Vec<String>,
    },
    /// No distribution has that name.
    SiteNotFound {
        /// What was said.
        spoken: String,
        /// The sites there are.
        known: Vec<String>,
    },
    /// The accounts have no CloudFront distribution.
    NoSites,
    /// What the security check found, per account and region.
    Security(Vec<Scoped<Findings>>),
    /// What each account spent this month.
    MonthCost(Vec<Scoped<MonthToDate>>),
    /// The account has no health-check document in that region.
    NoHealthCheckDocument {
        /// The account.
        account: String,
        /// The region.
        region: String,
    },
    /// The account's budget is in another currency: not changed by voice in dollars.
    BudgetCurrency {
        /// The account.
        account: String,
        /// Its currency.
        unit: String,
    },
}
