//! What a family gets when a person asks for one of its operations ([`Ask`]), and what it
//! gives back ([`Answer`]). Neither knows Alexa: the skill turns a request's slots into
//! [`Spoken`] values and an [`Answer`] into speech, a card and directives.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::Value;
use tracing::warn;

use super::reply::Reply;
use super::{ManagedTag, Operation, OpsError, SessionPolicy, names};
use crate::cloud::arn::Region;
use crate::cloud::broker::{AwsSession, BrokerError};
use crate::store::LinkedAccount;

/// The slot naming a region, shared by most operations.
pub const REGION_SLOT: &str = "region";

/// The slot naming one of the tenant's accounts ("in staging"), for account-wide changes.
pub const ACCOUNT_SLOT: &str = "account";

/// What the person said for one slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spoken {
    /// The words, as heard.
    pub value: Option<String>,
    /// The canonical id entity resolution matched them to, if any (e.g. `eu-west-1`).
    pub id: Option<String>,
}

/// Hands out AWS sessions for the speaker (the skill implements it with the broker).
#[async_trait::async_trait]
pub trait Sessions: Send + Sync {
    /// A session in `account` limited to `policy`.
    async fn session(
        &self,
        account: &LinkedAccount,
        policy: &SessionPolicy,
    ) -> Result<AwsSession, BrokerError>;
}

/// Settings some operations read (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How old an unused snapshot must be before the cleanup report lists it.
    pub snapshot_age: time::Duration,
    /// How old an active access key must be before the security check reports it.
    pub key_age: time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            snapshot_age: time::Duration::days(90),
            key_age: time::Duration::days(90),
        }
    }
}

/// One request for an operation, with everything its family may use to answer it.
pub struct Ask<'a> {
    /// The slots the person filled, by name.
    pub slots: BTreeMap<String, Spoken>,
    /// The speaker's linked accounts (never empty).
    pub accounts: &'a [LinkedAccount],
    /// Only resources carrying this tag may be changed.
    pub managed: &'a ManagedTag,
    /// Now, by voxgate's clock.
    pub now: time::OffsetDateTime,
    /// Operation settings.
    pub settings: &'a Settings,
    /// What the family asked to remember at its last [`Answer::Elicit`] in this
    /// conversation, if anything.
    pub context: Option<Value>,
    /// Where sessions come from.
    pub sessions: &'a dyn Sessions,
}

impl std::fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("slots", &self.slots)
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

/// Why an account could not answer.
#[derive(Debug)]
pub enum Trouble {
    /// No session: STS, the trust policy or the sealed details.
    Session(BrokerError),
    /// The AWS call failed.
    Aws(OpsError),
}

impl From<OpsError> for Trouble {
    fn from(error: OpsError) -> Self {
        Self::Aws(error)
    }
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session(error) => error.fmt(f),
            Self::Aws(error) => error.fmt(f),
        }
    }
}

/// Why one account (of several) could not answer, in words the speech catalog can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// STS refused the role (trust policy or ExternalId).
    TrustRejected,
    /// AWS could not be reached.
    Unreachable,
    /// The role lacks a permission.
    AccessDenied,
    /// The stored account details could not be opened.
    DetailsUnavailable,
    /// Any other AWS error.
    Failed,
}

impl From<&Trouble> for Failure {
    fn from(trouble: &Trouble) -> Self {
        match trouble {
            Trouble::Session(BrokerError::TrustRejected(_)) => Self::TrustRejected,
            Trouble::Session(BrokerError::Unreachable(_)) => Self::Unreachable,
            Trouble::Session(BrokerError::Unseal(_)) => Self::DetailsUnavailable,
            Trouble::Session(BrokerError::Sts(_)) => Self::Failed,
            Trouble::Aws(OpsError::AccessDenied(_)) => Self::AccessDenied,
            Trouble::Aws(OpsError::Unreachable(_) | OpsError::NoAnswer(_)) => Self::Unreachable,
            Trouble::Aws(OpsError::Aws { .. }) => Self::Failed,
        }
    }
}

/// Where something was looked at: an account label (when the tenant has several) and a
/// region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The account's label, when it needs saying.
    pub account: Option<String>,
    /// Region code.
    pub region: String,
}

/// What one account answered, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped<T> {
    /// Where.
    pub scope: Scope,
    /// What was found there.
    pub found: Result<T, Failure>,
}

/// One account's answer to a read, before it is put into words.
#[derive(Debug)]
pub struct Reached<T> {
    /// The account.
    pub account: LinkedAccount,
    /// The region looked in.
    pub region: String,
    /// What it answered.
    pub result: Result<T, Trouble>,
}

/// What a family answers.
#[derive(Debug)]
pub enum Answer {
    /// Say it and end the conversation; `card` lists everything in full.
    Say {
        /// What to say.
        reply: Reply,
        /// The card's text, if any.
        card: Option<String>,
    },
    /// Say it and wait for the person to fill `slot` of the same intent. `context` is
    /// handed back in [`Ask::context`] on the next turn.
    Elicit {
        /// What to say (a question).
        reply: Reply,
        /// The slot to fill.
        slot: &'static str,
        /// What to remember until then.
        context: Option<Value>,
    },
    /// Hold this critical operation until the person says its code.
    Hold(Box<Operation>),
    /// Refused by the tag guard before anything was held: recorded in the audit log with
    /// `reason`, and `reply` said.
    Refused {
        /// What was asked for.
        operation: Box<Operation>,
        /// Why, for the audit log.
        reason: String,
        /// What to say.
        reply: Reply,
    },
    /// No account could answer.
    Trouble(Box<LinkedAccount>, Trouble),
}

impl Answer {
    /// Says `reply`, without a card.
    pub fn say(reply: Reply) -> Self {
        Self::Say { reply, card: None }
    }
}

impl Ask<'_> {
    /// The text of `slot`, if the person filled it.
    pub fn value(&self, slot: &str) -> Option<&str> {
        self.slots
            .get(slot)
            .and_then(|s| s.value.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The region the person named, if any; an [`Answer`] asking again when it is no
    /// region voxgate knows (it is never guessed).
    pub fn region(&self) -> Result<Option<Region>, Answer> {
        let Some(slot) = self.slots.get(REGION_SLOT) else {
            return Ok(None);
        };
        let unknown = |spoken: &str| Answer::Elicit {
            reply: Reply::UnknownRegion {
                spoken: spoken.to_owned(),
            },
            slot: REGION_SLOT,
            context: None,
        };
        if let Some(id) = slot.id.as_deref() {
            return Region::parse(id).map(Some).map_err(|_| unknown(id));
        }
        let Some(spoken) = self.value(REGION_SLOT) else {
            return Ok(None);
        };
        if let Some(region) = Region::from_spoken_name(spoken) {
            return Ok(Some(region));
        }
        // "eu west one" → "eu-west-1".
        let code = spoken
            .split_whitespace()
            .map(|w| {
                let n = names::normalise(w);
                if n.is_empty() { w.to_lowercase() } else { n }
            })
            .collect::<Vec<_>>()
            .join("-");
        Region::parse(&code).map(Some).map_err(|_| unknown(spoken))
    }

    /// The one account an account-wide change is for: the only one, or the one the person
    /// named; else an [`Answer`] asking which (never a guess).
    pub fn one_account(&self) -> Result<&LinkedAccount, Answer> {
        if let [only] = self.accounts {
            return Ok(only);
        }
        let names: Vec<String> = self.accounts.iter().map(|a| a.name.clone()).collect();
        let which = || Answer::Elicit {
            reply: Reply::WhichAccount {
                accounts: names.clone(),
            },
            slot: ACCOUNT_SLOT,
            context: None,
        };
        let Some(spoken) = self.value(ACCOUNT_SLOT) else {
            return Err(which());
        };
        match names::find(spoken, self.accounts, |a| a.name.as_str()) {
            names::Match::One(account) => self
                .accounts
                .iter()
                .find(|a| a.id == account.id)
                .ok_or_else(which),
            _ => Err(which()),
        }
    }

    /// A whole number the person said in `slot`, within `range`; `Ok(None)` when the slot is
    /// empty, `Err` with what was said when it is no such number.
    pub fn whole_number(
        &self,
        slot: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, String> {
        let Some(spoken) = self.value(slot) else {
            return Ok(None);
        };
        let digits = spoken.trim_start_matches('$').replace(',', "");
        match digits.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(spoken.to_owned()),
        }
    }

    /// Holds `operation` on the resource people call `name` if it carries the managed tag
    /// (`managed`); else the tag guard's refusal, recorded in the audit log.
    pub fn hold_if_managed(&self, managed: bool, name: &str, operation: Operation) -> Answer {
        if managed {
            return Answer::Hold(Box::new(operation));
        }
        Answer::Refused {
            reply: Reply::NotManaged {
                name: name.to_owned(),
                tag: self.managed.to_string(),
            },
            reason: format!("lacks {}", self.managed),
            operation: Box::new(operation),
        }
    }

    /// Whether the tenant has more than one account (then answers name the account).
    pub fn several_accounts(&self) -> bool {
        self.accounts.len() > 1
    }

    /// Runs `read` in every account at once (each in `region`, or the account's own), with
    /// a session limited to `policy`.
    pub async fn each_account<T, F, Fut>(
        &self,
        policy: &SessionPolicy,
        region: Option<&Region>,
        read: F,
    ) -> Vec<Reached<T>>
    where
        F: Fn(AwsSession, String) -> Fut,
        Fut: Future<Output = Result<T, OpsError>>,
    {
        let reads = self.accounts.iter().map(|account| {
            let region = region
                .map_or(account.region.as_str(), Region::as_str)
                .to_owned();
            let read = &read;
            async move {
                let result = match self.sessions.session(account, policy).await {
                    Ok(session) => read(session, region.clone()).await.map_err(Trouble::Aws),
                    Err(error) => Err(Trouble::Session(error)),
                };
                if let Err(trouble) = &result {
                    warn!(account = %account.id, error = %trouble, "an account could not answer");
                }
                Reached {
                    account: account.clone(),
                    region,
                    result,
                }
            }
        });
        join_all(reads).await
    }

    /// The scope of `reached` as it should be said.
    pub fn scope<T>(&self, reached: &Reached<T>) -> Scope {
        Scope {
            account: self
                .several_accounts()
                .then(|| reached.account.name.clone()),
            region: reached.region.clone(),
        }
    }

    /// Every account's answer in words, each failed one saying why; `Err` when no account
    /// answered at all (then the first one's trouble is said, as for a single account).
    pub fn scoped<T, U>(
        &self,
        reached: Vec<Reached<T>>,
        mut words: impl FnMut(&Reached<T>, &T) -> U,
    ) -> Result<Vec<Scoped<U>>, Answer> {
        let reached = answered(reached)?;
        Ok(reached
            .iter()
            .map(|r| Scoped {
                scope: self.scope(r),
                found: match &r.result {
                    Ok(found) => Ok(words(r, found)),
                    Err(trouble) => Err(Failure::from(trouble)),
                },
            })
            .collect())
    }
}

/// `reached`, if at least one account answered; else the answer saying the first one's
/// trouble (as for a single account).
pub fn answered<T>(reached: Vec<Reached<T>>) -> Result<Vec<Reached<T>>, Answer> {
    if !reached.iter().all(|r| r.result.is_err()) {
        return Ok(reached);
    }
    Err(match reached.into_iter().next() {
        Some(Reached {
            account,
            result: Err(trouble),
            ..
        }) => Answer::Trouble(Box::new(account), trouble),
        _ => Answer::say(Reply::NothingToSay),
    })
}

/// Card lines for one account's part of a card: a heading and `lines`, or why it could not
/// answer.
pub fn card_section<T>(reached: &Reached<T>, lines: impl FnOnce(&T) -> Vec<String>) -> Vec<String> {
    let mut out = vec![format!("{} ({}):", reached.account.name, reached.region)];
    match &reached.result {
        Ok(found) => out.extend(lines(found).into_iter().map(|l| format!("  {l}"))),
        Err(trouble) => out.push(format!(
            "  could not answer: {}",
            match Failure::from(trouble) {
                Failure::TrustRejected => "the role turned voxgate away",
                Failure::Unreachable => "AWS could not be reached",
                Failure::AccessDenied => "the role lacks a permission",
                Failure::DetailsUnavailable => "the stored account details could not be opened",
                Failure::Failed => "AWS reported an error",
            }
        )),
    }
    out
}
