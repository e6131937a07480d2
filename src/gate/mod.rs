//! The gate: critical operations are held as challenges until the person speaks the
//! one-time code their companion app shows next to the operation's summary.
//!
//! Codes are bound to the user, the operation and the challenge ([`code`]). A code approves
//! exactly one pending challenge, once: the move pending→approved is one atomic statement in
//! the store. Wrong codes are limited per challenge (5, then it is cancelled) and per user
//! across challenges, sessions and devices (a lockout with growing delay that only a right
//! code resets).
//!
//! Every decision is a state change and its audit record written in one transaction, so one
//! never exists without the other: if the record cannot be written, the decision is not
//! taken. Running the operation itself cannot be part of a transaction; its approval is
//! recorded before and its outcome after, and an outcome that cannot be known is recorded as
//! such ([`State::OutcomeUnknown`]) and never retried.
//!
//! Knows the store, the sealer and the audit log; nothing of HTTP or Alexa.

pub mod challenge;
mod close;
pub mod code;
mod confirm;
mod hold;
mod sweep;

use std::sync::Arc;

use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use self::challenge::{Challenge, State, Verdict};
pub use self::code::{CurrentCode, STEP_SECONDS, SpokenCode};
use crate::audit::{Actor, AuditLog, Entry, Outcome, Unrecorded};
use crate::clock::Clock;
use crate::cloud::seal::{Purpose, SealContext, SealError, Sealer};
use crate::ops::Operation;
use crate::store::{ChallengeRow, Store, StoreError, User, UserId};

/// How long a challenge waits for its code by default.
pub const DEFAULT_TTL: Duration = Duration::minutes(5);
/// Wrong codes a challenge survives; the next one cancels it.
pub const MAX_WRONG_CODES: i64 = 5;
/// Consecutive wrong codes (across challenges) after which a user is locked out.
pub const LOCKOUT_AFTER: i64 = 3;
/// The first lockout; each further wrong code doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: Duration = Duration::seconds(30);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::hours(1);
/// An approval whose outcome is not recorded after this long cannot be running any more
/// (every AWS call has a deadline well inside Alexa's 8 s): voxgate stopped while running
/// it, so it is closed as outcome-unknown.
pub const STALE_APPROVAL: Duration = Duration::minutes(2);

/// Why the gate could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user's key could not be sealed or opened.
    #[error("user key: {0}")]
    Seal(#[from] SealError),
    /// A stored challenge cannot be read; it was closed as unreadable.
    #[error("challenge {0} is unreadable; it was closed and nothing ran")]
    Unreadable(String),
    /// The user already has a pending challenge.
    #[error("another challenge is pending")]
    AlreadyPending(Box<Challenge>),
    /// No randomness, or no code generator.
    #[error("no randomness available")]
    Random,
    /// The decision could not be recorded, so it was not taken.
    #[error("the audit log could not record the decision; nothing was done")]
    Unrecorded,
}

impl From<Unrecorded> for GateError {
    fn from(_: Unrecorded) -> Self {
        Self::Unrecorded
    }
}

impl From<code::CodeError> for GateError {
    fn from(_: code::CodeError) -> Self {
        Self::Random
    }
}

/// A change the companion app shows live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GateEvent {
    /// Whose challenge.
    pub user_id: String,
    /// Which challenge.
    pub challenge_id: String,
    /// What happened: created, confirmed, denied, cancelled, too-many-wrong-codes, replaced,
    /// expired, executed, failed, outcome-unknown, unreadable.
    pub kind: String,
    /// The operation's summary.
    pub summary: String,
}

/// How an approved operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// It ran; the AWS request id, if AWS gave one.
    Executed(Option<String>),
    /// It did not run (refused, or failed before anything changed); why.
    Failed(String),
    /// Whether it ran cannot be known (no answer in time); why.
    Unknown(String),
}

/// What became of a deny or a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// It was waiting and is now over for good.
    Closed(Challenge),
    /// It had already left `pending` (approved and running, expired, …): see its state.
    TooLate(Challenge),
    /// No such challenge of this user.
    NotFound,
}

/// What became of a recorded outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Recorded.
    Recorded,
    /// The challenge was no longer approved (another outcome is on record); nothing written.
    AlreadyClosed(State),
}

/// Holds and confirms challenges.
pub struct Gate {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    events: tokio::sync::broadcast::Sender<GateEvent>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn unix(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}

/// The event kind a state change is shown as in the app.
fn event_kind(outcome: Outcome) -> Option<&'static str> {
    Some(match outcome {
        Outcome::Held => "created",
        Outcome::Confirmed => "confirmed",
        Outcome::Denied => "denied",
        Outcome::Cancelled => "cancelled",
        Outcome::TooManyWrongCodes => "too-many-wrong-codes",
        Outcome::Replaced => "replaced",
        Outcome::Expired => "expired",
        Outcome::Executed => "executed",
        Outcome::Failed => "failed",
        Outcome::OutcomeUnknown => "outcome-unknown",
        Outcome::Unreadable => "unreadable",
        _ => return None,
    })
}

impl Gate {
    /// A gate over `store`, sealing user keys with `sealer`, recording to `audit`.
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        let events = tokio::sync::broadcast::channel(256).0;
        // Where the store carries events between replicas, every event (this replica's
        // own included) arrives through it.
        if let Some(mut feed) = store.event_feed() {
            let local = events.clone();
            tokio::spawn(async move {
                loop {
                    match feed.recv().await {
                        Ok(payload) => {
                            if let Ok(event) = serde_json::from_str::<GateEvent>(&payload) {
                                let _ = local.send(event);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
        Self {
            store,
            sealer,
            audit,
            clock,
            ttl,
            events,
        }
    }

    async fn publish(&self, user_id: &str, challenge_id: &str, summary: &str, outcome: Outcome) {
        let Some(kind) = event_kind(outcome) else {
            return;
        };
        let event = GateEvent {
            user_id: user_id.to_owned(),
            challenge_id: challenge_id.to_owned(),
            kind: kind.to_owned(),
            summary: summary.to_owned(),
        };
        let payload = serde_json::to_string(&event).unwrap_or_default();
        match self.store.publish_event(&payload).await {
            Ok(true) => {}
            Ok(false) => {
                // Nobody listening is fine.
                let _ = self.events.send(event);
            }
            Err(error) => {
                tracing::warn!(%error, "could not publish an event to other replicas");
                let _ = self.events.send(event);
            }
        }
    }

    /// Live lifecycle events (this process's; see the companion module for replicas).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<GateEvent> {
        self.events.subscribe()
    }

    /// The clock the gate runs on.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The audit log the gate writes to.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    fn entry(&self, challenge: &Challenge, outcome: Outcome, detail: &str, actor: &Actor) -> Entry {
        Entry {
            at: self.clock.now().unix_timestamp(),
            tenant_id: Some(challenge.tenant_id.clone()),
            user_id: Some(challenge.user_id.as_str().to_owned()),
            challenge_id: Some(challenge.id.clone()),
            actor: actor.clone(),
            summary: challenge.summary.clone(),
            digest: challenge.digest.clone(),
            outcome,
            detail: detail.to_owned(),
            aws_request_id: None,
        }
    }

    /// Records a refusal that changes no state (a code for an ended challenge, a locked-out
    /// user). The refusal stands even if the record cannot be written; the failure is
    /// logged and counted by the audit log.
    async fn record_refusal(&self, entry: Entry) {
        let _ = self.audit.append(&entry).await;
    }

    /// Records a decision about an operation that was never held (e.g. refused by the tag
    /// guard). The refusal stands even if the record cannot be written.
    pub async fn record_unheld(
        &self,
        user: &User,
        operation: &Operation,
        outcome: Outcome,
        detail: &str,
        actor: &Actor,
    ) {
        self.record_refusal(Entry {
            at: self.clock.now().unix_timestamp(),
            tenant_id: Some(user.tenant_id.as_str().to_owned()),
            user_id: Some(user.id.as_str().to_owned()),
            challenge_id: None,
            actor: actor.clone(),
            summary: operation.summary(),
            digest: operation.digest(),
            outcome,
            detail: detail.to_owned(),
            aws_request_id: None,
        })
        .await;
    }

    /// The user's `K_user`, made (20 random bytes, sealed) on first use.
    async fn user_key(&self, user: &UserId, tenant: &str) -> Result<Zeroizing<Vec<u8>>, GateError> {
        let ctx = SealContext::new(tenant, Purpose::TotpKey, user.as_str());
        let sealed = match self.store.totp_key(user).await? {
            Some(sealed) => sealed,
            None => {
                let mut key = Zeroizing::new([0u8; 20]);
                SystemRandom::new()
                    .fill(key.as_mut())
                    .map_err(|_| GateError::Random)?;
                let sealed = self.sealer.seal(key.as_ref(), &ctx).await?;
                // Two first uses at once agree on whichever key was stored first.
                self.store.set_totp_key_once(user, &sealed).await?
            }
        };
        Ok(self.sealer.open(&sealed, &ctx).await?)
    }

    /// Reads a stored challenge; one that cannot be read is closed as unreadable (audited)
    /// and reported as [`GateError::Unreadable`].
    async fn read(&self, row: &ChallengeRow) -> Result<Challenge, GateError> {
        match Challenge::read(row) {
            Some(challenge) => Ok(challenge),
            None => {
                self.close_unreadable(row, false).await;
                Err(GateError::Unreadable(row.id.clone()))
            }
        }
    }

    /// Closes a row that cannot be read (tampered, or written by an older version), so it
    /// neither blocks its user nor stalls the sweeper; nothing of it ever runs from here. A
    /// pending one ends as `unreadable` (nothing ran); an approved one as `outcome-unknown`,
    /// since it may have run. A row written by a newer version is left to it unless `due`
    /// (the sweeper found it expired or stale).
    async fn close_unreadable(&self, row: &ChallengeRow, due: bool) -> bool {
        if !due && challenge::from_newer_version(&row.operation) {
            tracing::warn!(challenge = %row.id, "left a challenge written by a newer voxgate to it");
            return false;
        }
        let approved = row.state == State::Approved.as_str();
        let (to, outcome, detail) = if approved {
            (
                State::OutcomeUnknown,
                Outcome::OutcomeUnknown,
                "approved, but the stored operation could not be read back (altered, or \
                 written by another version of voxgate), so whether it ran is unknown",
            )
        } else {
            (
                State::Unreadable,
                Outcome::Unreadable,
                "the stored operation could not be read (altered, or written by another \
                 version of voxgate); closed, nothing ran",
            )
        };
        let result = async {
            let now = self.clock.now().unix_timestamp();
            let mut tx = self.store.begin().await?;
            let from = if approved { "approved" } else { "pending" };
            if !tx
                .move_challenge(&row.id, &[from], to.as_str(), now)
                .await?
            {
                tx.rollback().await?;
                return Ok::<bool, GateError>(false);
            }
            let entry = Entry {
                at: now,
                tenant_id: Some(row.tenant_id.clone()),
                user_id: Some(row.user_id.clone()),
                challenge_id: Some(row.id.clone()),
                actor: Actor::Voxgate,
                summary: row.summary.chars().take(500).collect(),
                digest: row.digest.chars().take(128).collect(),
                outcome,
                detail: detail.into(),
                aws_request_id: None,
            };
            self.audit.commit_with(tx, &entry).await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => {
                tracing::error!(challenge = %row.id, outcome = outcome.as_str(), "closed an unreadable challenge");
                self.publish(&row.user_id, &row.id, &row.summary, outcome)
                    .await;
                true
            }
            Ok(false) => false,
            Err(error) => {
                tracing::error!(%error, challenge = %row.id, "could not close an unreadable challenge");
                false
            }
        }
    }
}
