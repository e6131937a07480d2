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
pub mod code;

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
    async fn close_unreadable(&self, row: &ChallengeRow, due: bool) {
        if !due && challenge::from_newer_version(&row.operation) {
            tracing::warn!(challenge = %row.id, "left a challenge written by a newer voxgate to it");
            return;
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
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, challenge = %row.id, "could not close an unreadable challenge");
            }
        }
    }

    /// Holds `operation` for `user`; `AlreadyPending` if they have a challenge waiting.
    pub async fn hold(
        &self,
        user: &User,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        self.hold_replacing(user, None, operation, actor).await
    }

    /// Replaces the user's pending challenge `old_id` (with their consent) by `operation`.
    pub async fn replace(
        &self,
        user: &User,
        old_id: &str,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        let old = self.challenge_of(user, old_id).await?;
        self.hold_replacing(user, old.as_ref(), operation, actor)
            .await
    }

    async fn hold_replacing(
        &self,
        user: &User,
        old: Option<&Challenge>,
        operation: &Operation,
        actor: &Actor,
    ) -> Result<Challenge, GateError> {
        if old.is_none()
            && let Some(existing) = self.pending(&user.id).await?
        {
            return Err(GateError::AlreadyPending(Box::new(existing)));
        }
        // Make the key now, so the app can show the code at once.
        self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let now = self.clock.now();
        let row = ChallengeRow {
            id: crate::store::new_id("c"),
            tenant_id: user.tenant_id.as_str().to_owned(),
            user_id: user.id.as_str().to_owned(),
            account_id: operation.account_id().to_owned(),
            operation: challenge::store_operation(operation),
            summary: operation.summary(),
            digest: operation.digest(),
            state: State::Pending.as_str().to_owned(),
            created_at: now.unix_timestamp(),
            expires_at: (now + self.ttl).unix_timestamp(),
            wrong_codes: 0,
            used_step: None,
            closed_at: None,
        };
        let challenge = Challenge::read(&row).ok_or(GateError::Unreadable(row.id.clone()))?;
        let mut tx = self.store.begin().await?;
        let mut entries = Vec::new();
        if let Some(old) = old
            && tx
                .move_challenge(
                    &old.id,
                    &["pending"],
                    State::Replaced.as_str(),
                    now.unix_timestamp(),
                )
                .await?
        {
            entries.push(self.entry(
                old,
                Outcome::Replaced,
                "replaced by a newer operation",
                actor,
            ));
        }
        match tx.insert_challenge(&row).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                drop(tx);
                // Lost a race with another hold for the same user.
                let existing = self
                    .pending(&user.id)
                    .await?
                    .ok_or(GateError::Unreadable(row.id.clone()))?;
                return Err(GateError::AlreadyPending(Box::new(existing)));
            }
            Err(other) => return Err(other.into()),
        }
        entries.push(self.entry(&challenge, Outcome::Held, "", actor));
        // An operation held without a record would be approvable off the books.
        self.audit.commit_all(tx, &entries).await?;
        if let Some(old) = old.filter(|_| entries.len() == 2) {
            self.publish(
                old.user_id.as_str(),
                &old.id,
                &old.summary,
                Outcome::Replaced,
            )
            .await;
        }
        self.publish(
            challenge.user_id.as_str(),
            &challenge.id,
            &challenge.summary,
            Outcome::Held,
        )
        .await;
        Ok(challenge)
    }

    /// The user's pending challenge (an expired one is expired on the way, an unreadable
    /// one closed).
    pub async fn pending(&self, user: &UserId) -> Result<Option<Challenge>, GateError> {
        for row in self.store.pending_challenges(user).await? {
            let challenge = match self.read(&row).await {
                Ok(challenge) => challenge,
                Err(GateError::Unreadable(_)) => continue,
                Err(other) => return Err(other),
            };
            if challenge.expires_at <= self.clock.now() {
                self.expire(&challenge).await?;
                continue;
            }
            return Ok(Some(challenge));
        }
        Ok(None)
    }

    /// The user's pending challenges (for the companion app).
    pub async fn pending_all(&self, user: &UserId) -> Result<Vec<Challenge>, GateError> {
        Ok(self.pending(user).await?.into_iter().collect())
    }

    /// A challenge of `user` by id (none if it is another user's).
    pub async fn challenge_of(
        &self,
        user: &User,
        id: &str,
    ) -> Result<Option<Challenge>, GateError> {
        match self.store.challenge(id).await? {
            Some(row) if row.user_id == user.id.as_str() => Ok(Some(self.read(&row).await?)),
            _ => Ok(None),
        }
    }

    /// The code the app shows for `challenge` now.
    pub async fn current_code(&self, challenge: &Challenge) -> Result<CurrentCode, GateError> {
        let key = self
            .user_key(&challenge.user_id, &challenge.tenant_id)
            .await?;
        let totp = code::totp_for(&key, &challenge.id, &challenge.digest)?;
        let now = unix(self.clock.now());
        Ok(CurrentCode {
            code: totp.generate(now).to_string(),
            seconds_left_in_step: STEP_SECONDS - now % STEP_SECONDS,
        })
    }

    /// Moves `challenge` from `from` to `to` with its audit record, in one transaction.
    /// False if it was not in `from` (nothing written).
    async fn transition(
        &self,
        challenge: &Challenge,
        from: &[&str],
        to: State,
        entry: Entry,
    ) -> Result<bool, GateError> {
        let now = self.clock.now().unix_timestamp();
        let mut tx = self.store.begin().await?;
        if !tx
            .move_challenge(&challenge.id, from, to.as_str(), now)
            .await?
        {
            return Ok(false);
        }
        self.audit.commit_with(tx, &entry).await?;
        self.publish(
            challenge.user_id.as_str(),
            &challenge.id,
            &challenge.summary,
            entry.outcome,
        )
        .await;
        Ok(true)
    }

    async fn expire(&self, challenge: &Challenge) -> Result<bool, GateError> {
        let entry = self.entry(challenge, Outcome::Expired, "", &Actor::Voxgate);
        self.transition(challenge, &["pending"], State::Expired, entry)
            .await
    }

    /// Expires every challenge whose time is up and closes approvals whose outcome was never
    /// recorded (run periodically); returns the expired ones. One row that cannot be read or
    /// written never stops the others.
    pub async fn expire_due(&self) -> Result<Vec<Challenge>, GateError> {
        let now = self.clock.now();
        // Approvals whose outcome was never recorded: voxgate stopped while running them.
        // Whether they ran cannot be known; they are said to be unknown, never retried.
        let stale_before = (now - STALE_APPROVAL).unix_timestamp();
        for row in self.store.stale_approved(stale_before).await? {
            let Some(challenge) = Challenge::read(&row) else {
                self.close_unreadable(&row, true).await;
                continue;
            };
            let entry = self.entry(
                &challenge,
                Outcome::OutcomeUnknown,
                "voxgate stopped while running it, so whether it ran is unknown; check the \
                 resource",
                &Actor::Voxgate,
            );
            if let Err(error) = self
                .transition(&challenge, &["approved"], State::OutcomeUnknown, entry)
                .await
            {
                tracing::error!(%error, challenge = %challenge.id, "could not close a stale approval");
            }
        }
        let mut expired = Vec::new();
        for row in self.store.due_challenges(now.unix_timestamp()).await? {
            let Some(challenge) = Challenge::read(&row) else {
                self.close_unreadable(&row, true).await;
                continue;
            };
            match self.expire(&challenge).await {
                Ok(true) => expired.push(challenge),
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, challenge = %challenge.id, "could not expire a challenge");
                }
            }
        }
        Ok(expired)
    }

    /// Checks a spoken code against the user's challenge (`challenge_id` from the session,
    /// or else their pending one).
    pub async fn confirm(
        &self,
        user: &User,
        challenge_id: Option<&str>,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let found = match challenge_id {
            Some(id) => self.challenge_of(user, id).await,
            None => Ok(None),
        };
        let challenge = match found {
            Ok(Some(challenge)) => challenge,
            Ok(None) => match self.pending(&user.id).await? {
                Some(challenge) => challenge,
                None => return self.nothing_pending(user, spoken, actor).await,
            },
            Err(GateError::Unreadable(_)) => return Ok(Verdict::Unreadable),
            Err(other) => return Err(other),
        };
        if challenge.state != State::Pending {
            let matched = self.matches(user, &challenge, spoken).await?.is_some();
            return Ok(self.after_end(challenge, matched, actor).await);
        }
        // Checks of one challenge take turns (also across replicas), so each sees the wrong
        // codes and the lockout the ones before it left: guessing in parallel gains nothing.
        let owner = crate::store::new_id("turn");
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now().unix_timestamp();
            if self
                .store
                .take_check_turn(&challenge.id, &owner, now + 10, now)
                .await?
            {
                break;
            }
            match self.challenge_of(user, &challenge.id).await {
                Ok(Some(c)) if c.state == State::Pending => {}
                // It was approved, denied or closed meanwhile: say so.
                Ok(Some(c)) => {
                    let matched = self.matches(user, &c, spoken).await?.is_some();
                    return Ok(self.after_end(c, matched, actor).await);
                }
                Ok(None) => return Ok(Verdict::NothingPending),
                Err(GateError::Unreadable(_)) => return Ok(Verdict::Unreadable),
                Err(other) => return Err(other),
            }
            if started.elapsed() > std::time::Duration::from_secs(5) {
                return Ok(Verdict::Busy);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        // Whatever happens in the check, the turn is given back (only by its holder).
        let verdict = async {
            match self.challenge_of(user, &challenge.id).await {
                Ok(Some(c)) => self.check(user, c, spoken, actor).await,
                Ok(None) => Ok(Verdict::NothingPending),
                Err(GateError::Unreadable(_)) => Ok(Verdict::Unreadable),
                Err(other) => Err(other),
            }
        }
        .await;
        if let Err(error) = self.store.release_check_turn(&challenge.id, &owner).await {
            tracing::warn!(%error, "could not give back a check turn; it lapses in 10 s");
        }
        verdict
    }

    /// The TOTP step `spoken` matches for `challenge`, if it is its code right now.
    async fn matches(
        &self,
        user: &User,
        challenge: &Challenge,
        spoken: &str,
    ) -> Result<Option<u64>, GateError> {
        let Some(code) = SpokenCode::parse(spoken) else {
            return Ok(None);
        };
        let key = self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let totp = code::totp_for(&key, &challenge.id, &challenge.digest)?;
        Ok(totp.check(code.as_str(), unix(self.clock.now())))
    }

    /// Checks a spoken code against `challenge` as it stands (holding its turn if pending).
    async fn check(
        &self,
        user: &User,
        challenge: Challenge,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        if let Some(until) = self.store.user_locked_until(&user.id).await?
            && until > now.unix_timestamp()
        {
            self.record_refusal(self.entry(
                &challenge,
                Outcome::LockedOut,
                "code refused unchecked: user locked out",
                actor,
            ))
            .await;
            return Ok(Verdict::LockedOut(Duration::seconds(
                until - now.unix_timestamp(),
            )));
        }
        let matched_step = self.matches(user, &challenge, spoken).await?;
        if challenge.state != State::Pending {
            return Ok(self
                .after_end(challenge, matched_step.is_some(), actor)
                .await);
        }
        if challenge.expires_at <= now {
            self.expire(&challenge).await?;
            let mut expired = challenge;
            expired.state = State::Expired;
            return Ok(self.after_end(expired, matched_step.is_some(), actor).await);
        }
        let Some(step) = matched_step else {
            let well_formed = SpokenCode::parse(spoken).is_some();
            return self.wrong_code(user, challenge, well_formed, actor).await;
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let mut tx = self.store.begin().await?;
        if !tx
            .approve_challenge(&challenge.id, step, now.unix_timestamp(), MAX_WRONG_CODES)
            .await?
        {
            drop(tx);
            // Something else ended it between our look and our move: say what.
            return Ok(match self.challenge_of(user, &challenge.id).await {
                Ok(Some(current)) => self.after_end(current, true, actor).await,
                Ok(None) => Verdict::NothingPending,
                Err(GateError::Unreadable(_)) => Verdict::Unreadable,
                Err(other) => return Err(other),
            });
        }
        tx.reset_user_failures(&user.id).await?;
        let mut approved = challenge;
        approved.state = State::Approved;
        // Nothing runs unless its approval is on record: both are written, or neither.
        self.audit
            .commit_with(tx, &self.entry(&approved, Outcome::Confirmed, "", actor))
            .await?;
        self.publish(
            approved.user_id.as_str(),
            &approved.id,
            &approved.summary,
            Outcome::Confirmed,
        )
        .await;
        Ok(Verdict::Approved(approved))
    }

    /// The verdict for a code spoken to a challenge that had already ended, recorded with
    /// the cause.
    async fn after_end(&self, challenge: Challenge, matched: bool, actor: &Actor) -> Verdict {
        let detail = if matched {
            "the code was right"
        } else {
            "the code was not right"
        };
        let (outcome, verdict): (Outcome, fn(Challenge) -> Verdict) = match challenge.state {
            State::Pending => return Verdict::Busy,
            s if s.was_approved() && matched => (Outcome::Reuse, Verdict::AlreadyUsed),
            s if s.was_approved() => (Outcome::CodeAfterApproval, Verdict::AlreadyApproved),
            State::Denied => (Outcome::CodeAfterDeny, Verdict::Denied),
            State::Cancelled => (Outcome::CodeAfterCancel, Verdict::Cancelled),
            State::Replaced => (Outcome::CodeAfterReplace, Verdict::Replaced),
            State::Expired => (Outcome::CodeAfterExpiry, Verdict::Expired),
            State::TooManyWrongCodes => (Outcome::CodeAfterWrongCodes, Verdict::EndedByWrongCodes),
            _ => return Verdict::Unreadable,
        };
        self.record_refusal(self.entry(&challenge, outcome, detail, actor))
            .await;
        verdict(challenge)
    }

    /// Nothing waits for a code; if the code is one that recently approved an operation,
    /// it is a reuse, and is recorded as such.
    async fn nothing_pending(
        &self,
        user: &User,
        spoken: &str,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        if SpokenCode::parse(spoken).is_none() {
            return Ok(Verdict::NothingPending);
        }
        let since = (self.clock.now() - Duration::minutes(10)).unix_timestamp();
        for row in self.store.recently_approved(&user.id, since).await? {
            let Some(challenge) = Challenge::read(&row) else {
                continue;
            };
            if self.matches(user, &challenge, spoken).await?.is_some() {
                self.record_refusal(self.entry(
                    &challenge,
                    Outcome::Reuse,
                    "code spoken again with nothing pending",
                    actor,
                ))
                .await;
                return Ok(Verdict::AlreadyUsed(challenge));
            }
        }
        Ok(Verdict::NothingPending)
    }

    async fn wrong_code(
        &self,
        user: &User,
        challenge: Challenge,
        well_formed: bool,
        actor: &Actor,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let failures = tx.count_user_failure(&user.id).await?;
        if failures >= LOCKOUT_AFTER {
            let doublings = u32::try_from(failures - LOCKOUT_AFTER)
                .unwrap_or(u32::MAX)
                .min(16);
            let delay = (FIRST_LOCKOUT * 2_i32.pow(doublings)).min(MAX_LOCKOUT);
            tx.lock_user(&user.id, (now + delay).unix_timestamp())
                .await?;
        }
        let Some(wrong) = tx.count_wrong_code(&challenge.id).await? else {
            drop(tx);
            return Ok(match self.challenge_of(user, &challenge.id).await {
                Ok(Some(current)) => self.after_end(current, false, actor).await,
                Ok(None) => Verdict::NothingPending,
                Err(GateError::Unreadable(_)) => Verdict::Unreadable,
                Err(other) => return Err(other),
            });
        };
        let detail = if well_formed {
            "wrong code"
        } else {
            "not a code"
        };
        let mut entries = vec![self.entry(&challenge, Outcome::WrongCode, detail, actor)];
        let exhausted = wrong >= MAX_WRONG_CODES
            && tx
                .move_challenge(
                    &challenge.id,
                    &["pending"],
                    State::TooManyWrongCodes.as_str(),
                    now.unix_timestamp(),
                )
                .await?;
        if exhausted {
            entries.push(self.entry(
                &challenge,
                Outcome::TooManyWrongCodes,
                "too many wrong codes: challenge cancelled",
                actor,
            ));
        }
        self.audit.commit_all(tx, &entries).await?;
        if exhausted {
            self.publish(
                challenge.user_id.as_str(),
                &challenge.id,
                &challenge.summary,
                Outcome::TooManyWrongCodes,
            )
            .await;
            return Ok(Verdict::TooManyWrongCodes(challenge));
        }
        Ok(Verdict::WrongCode {
            tries_left: MAX_WRONG_CODES - wrong,
            challenge,
        })
    }

    /// Ends the user's challenge for good: denied in the app.
    pub async fn deny(&self, user: &User, id: &str, actor: &Actor) -> Result<Closing, GateError> {
        self.close(user, id, State::Denied, Outcome::Denied, actor)
            .await
    }

    /// Ends the user's challenge for good: cancelled by voice.
    pub async fn cancel(&self, user: &User, id: &str, actor: &Actor) -> Result<Closing, GateError> {
        self.close(user, id, State::Cancelled, Outcome::Cancelled, actor)
            .await
    }

    async fn close(
        &self,
        user: &User,
        id: &str,
        to: State,
        outcome: Outcome,
        actor: &Actor,
    ) -> Result<Closing, GateError> {
        let Some(challenge) = self.challenge_of(user, id).await? else {
            return Ok(Closing::NotFound);
        };
        let entry = self.entry(&challenge, outcome, "", actor);
        if self.transition(&challenge, &["pending"], to, entry).await? {
            let mut closed = challenge;
            closed.state = to;
            return Ok(Closing::Closed(closed));
        }
        // It left `pending` first (approved and running, expired, …): say which.
        match self.challenge_of(user, id).await? {
            Some(current) => Ok(Closing::TooLate(current)),
            None => Ok(Closing::NotFound),
        }
    }

    /// Records how an approved operation ended. Only the first outcome is ever written: a
    /// challenge that is no longer `approved` (e.g. the sweeper already said its outcome is
    /// unknown) gets no second, contradicting one.
    pub async fn finish(
        &self,
        challenge: &Challenge,
        execution: Execution,
        actor: &Actor,
    ) -> Result<Finish, GateError> {
        let (to, outcome, detail, request_id) = match execution {
            Execution::Executed(request_id) => (
                State::Executed,
                Outcome::Executed,
                String::new(),
                request_id,
            ),
            Execution::Failed(detail) => (State::Failed, Outcome::Failed, detail, None),
            Execution::Unknown(detail) => {
                (State::OutcomeUnknown, Outcome::OutcomeUnknown, detail, None)
            }
        };
        let mut entry = self.entry(challenge, outcome, &detail, actor);
        entry.aws_request_id = request_id;
        if self.transition(challenge, &["approved"], to, entry).await? {
            return Ok(Finish::Recorded);
        }
        let state = self
            .store
            .challenge(&challenge.id)
            .await?
            .and_then(|row| State::parse(&row.state))
            .unwrap_or(State::Unreadable);
        tracing::warn!(
            challenge = %challenge.id,
            state = state.as_str(),
            outcome = %outcome,
            "an outcome arrived for a challenge that already has one; not recorded"
        );
        Ok(Finish::AlreadyClosed(state))
    }
}
