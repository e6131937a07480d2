//! The gate: critical operations are held as challenges until the person speaks the
//! one-time code their companion app shows next to the operation's summary.
//!
//! The code is RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps, ±1 step) over
//! `K_op = HMAC-SHA256(K_user, digest)`: a code for one operation can never approve another,
//! and any change of parameters changes the code. A code approves exactly one pending
//! challenge, once: the transition pending→approved is one atomic statement in the store,
//! and the matched time step is recorded so the same code is refused afterwards (RFC 6238
//! §5.2). Wrong codes are limited per challenge (5, then it is cancelled) and per user
//! across challenges, sessions and devices (a lockout with growing delay that only a right
//! code resets). Every decision is appended to the audit log.
//!
//! Knows the store, the sealer and the audit log; nothing of HTTP or Alexa.

use std::sync::Arc;

use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::audit::{AuditLog, Entry, Outcome};
use crate::clock::Clock;
use crate::cloud::seal::{Purpose, SealContext, SealError, Sealer};
use crate::ops::ec2::InstanceOperation;
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
/// An approval whose outcome is not recorded after this long is closed as failed.
pub const STALE_APPROVAL: Duration = Duration::minutes(10);
/// TOTP step (RFC 6238 §4).
pub const STEP_SECONDS: u64 = 30;

/// A spoken code: 1 to 6 digits, left-padded to 6 ("81804" is "081804"). Alexa sends
/// AMAZON.NUMBER values as strings; they stay strings.
#[derive(Clone, PartialEq, Eq)]
pub struct SpokenCode(String);

impl SpokenCode {
    /// Parses what Alexa heard; anything but 1 to 6 digits is no code.
    pub fn parse(spoken: &str) -> Option<Self> {
        let spoken = spoken.trim();
        let valid = (1..=6).contains(&spoken.len()) && spoken.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Self(format!("{spoken:0>6}")))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SpokenCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpokenCode(<redacted>)")
    }
}

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its code.
    Pending,
    /// Its code was spoken; the operation is about to run.
    Approved,
    /// The operation ran.
    Executed,
    /// The operation failed.
    Failed,
    /// Denied in the app.
    Denied,
    /// Cancelled by voice, or by too many wrong codes.
    Cancelled,
    /// Replaced by a newer operation.
    Replaced,
    /// Its time ran out.
    Expired,
}

impl State {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Replaced => "replaced",
            Self::Expired => "expired",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "executed" => Self::Executed,
            "failed" => Self::Failed,
            "denied" => Self::Denied,
            "replaced" => Self::Replaced,
            "expired" => Self::Expired,
            _ => Self::Cancelled,
        }
    }
}

/// A held operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `c_…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: UserId,
    /// The operation.
    pub operation: InstanceOperation,
    /// Canonical summary.
    pub summary: String,
    /// Digest.
    pub digest: String,
    /// State.
    pub state: State,
    /// When it was held.
    pub created_at: OffsetDateTime,
    /// When it stops waiting.
    pub expires_at: OffsetDateTime,
    /// Wrong codes so far.
    pub wrong_codes: i64,
}

fn timestamp(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = GateError;

    fn try_from(row: ChallengeRow) -> Result<Self, GateError> {
        let operation: InstanceOperation =
            serde_json::from_str(&row.operation).map_err(|_| GateError::Corrupt(row.id.clone()))?;
        // What runs must be what the code was made for.
        if operation.digest() != row.digest {
            return Err(GateError::Corrupt(row.id));
        }
        Ok(Self {
            operation,
            id: row.id,
            tenant_id: row.tenant_id,
            user_id: UserId(row.user_id),
            summary: row.summary,
            digest: row.digest,
            state: State::parse(&row.state),
            created_at: timestamp(row.created_at),
            expires_at: timestamp(row.expires_at),
            wrong_codes: row.wrong_codes,
        })
    }
}

/// The code the companion app shows for a challenge right now.
#[derive(Clone, PartialEq, Eq)]
pub struct CurrentCode {
    /// Six digits.
    pub code: String,
    /// Seconds until the next code.
    pub seconds_left_in_step: u64,
}

impl std::fmt::Debug for CurrentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCode")
            .field("code", &"<redacted>")
            .field("seconds_left_in_step", &self.seconds_left_in_step)
            .finish()
    }
}

/// What became of a spoken code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right code: the challenge is approved; the caller runs the operation now.
    Approved(Challenge),
    /// Wrong code; this many tries are left.
    WrongCode {
        /// Tries left on this challenge.
        tries_left: i64,
        /// The challenge.
        challenge: Challenge,
    },
    /// Wrong code, and the last allowed: the challenge is cancelled.
    TooManyWrongCodes(Challenge),
    /// The user is locked out for this long; the code was not checked.
    LockedOut(Duration),
    /// The code was already used (or the challenge already approved by it).
    Reused(Challenge),
    /// The challenge's time ran out.
    Expired(Challenge),
    /// The challenge ended otherwise (denied, cancelled, replaced).
    Closed(Challenge),
    /// Nothing is waiting for a code.
    NothingPending,
    /// Another code for the same challenge is being checked right now; try again.
    Busy,
}

/// Why the gate could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user's key could not be sealed or opened.
    #[error("user key: {0}")]
    Seal(#[from] SealError),
    /// A stored challenge cannot be read.
    #[error("challenge {0} is unreadable")]
    Corrupt(String),
    /// The user already has a pending challenge.
    #[error("another challenge is pending")]
    AlreadyPending(Box<Challenge>),
    /// No randomness.
    #[error("no randomness available")]
    Random,
    /// The decision could not be recorded, so it was not taken.
    #[error("the audit log could not record the decision; nothing was done")]
    Unrecorded,
}

/// A change the companion app shows live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GateEvent {
    /// Whose challenge.
    pub user_id: String,
    /// Which challenge.
    pub challenge_id: String,
    /// What happened: created, confirmed, denied, cancelled, replaced, expired, executed,
    /// failed.
    pub kind: String,
    /// The operation's summary.
    pub summary: String,
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

/// The TOTP generator for one operation: `K_op = HMAC-SHA256(K_user, digest)`.
fn totp_for(user_key: &[u8], digest: &str) -> Result<totp_rs::Totp, GateError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, user_key);
    let k_op = Zeroizing::new(hmac::sign(&key, digest.as_bytes()).as_ref().to_vec());
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(k_op.to_vec())
        .build()
        .map_err(|_| GateError::Corrupt("totp".into()))
}

fn unix(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
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

    async fn publish(&self, event: GateEvent) {
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

    async fn record(
        &self,
        challenge: &Challenge,
        outcome: Outcome,
        detail: &str,
        aws_request_id: Option<String>,
    ) -> bool {
        let kind = match outcome {
            Outcome::Held => Some("created"),
            Outcome::Confirmed => Some("confirmed"),
            Outcome::Denied => Some("denied"),
            Outcome::Cancelled => Some("cancelled"),
            Outcome::Replaced => Some("replaced"),
            Outcome::Expired => Some("expired"),
            Outcome::Executed => Some("executed"),
            Outcome::Failed => Some("failed"),
            Outcome::LockedOut if detail.starts_with("too many") => Some("cancelled"),
            _ => None,
        };
        if let Some(kind) = kind {
            self.publish(GateEvent {
                user_id: challenge.user_id.as_str().to_owned(),
                challenge_id: challenge.id.clone(),
                kind: kind.to_owned(),
                summary: challenge.summary.clone(),
            })
            .await;
        }
        let entry = Entry {
            at: self.clock.now().unix_timestamp(),
            tenant_id: Some(challenge.tenant_id.clone()),
            user_id: Some(challenge.user_id.as_str().to_owned()),
            summary: challenge.summary.clone(),
            digest: challenge.digest.clone(),
            outcome,
            detail: detail.to_owned(),
            aws_request_id,
        };
        match self.audit.append(entry).await {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, outcome = %outcome, challenge = %challenge.id, "could not append to the audit log");
                false
            }
        }
    }

    /// Records a decision about an operation that was never held (e.g. refused by the tag
    /// guard).
    pub async fn record_unheld(
        &self,
        user: &User,
        operation: &InstanceOperation,
        outcome: Outcome,
        detail: &str,
    ) {
        let entry = Entry {
            at: self.clock.now().unix_timestamp(),
            tenant_id: Some(user.tenant_id.as_str().to_owned()),
            user_id: Some(user.id.as_str().to_owned()),
            summary: operation.summary(),
            digest: operation.digest(),
            outcome,
            detail: detail.to_owned(),
            aws_request_id: None,
        };
        if let Err(error) = self.audit.append(entry).await {
            tracing::error!(%error, "could not append to the audit log");
        }
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

    /// Holds `operation` for `user`; `AlreadyPending` if they have a challenge waiting.
    pub async fn hold(
        &self,
        user: &User,
        operation: &InstanceOperation,
    ) -> Result<Challenge, GateError> {
        if let Some(existing) = self.pending(&user.id).await? {
            return Err(GateError::AlreadyPending(Box::new(existing)));
        }
        // Make the key now, so the app can show the code at once.
        self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let now = self.clock.now();
        let row = ChallengeRow {
            id: crate::store::new_id("c"),
            tenant_id: user.tenant_id.as_str().to_owned(),
            user_id: user.id.as_str().to_owned(),
            account_id: operation.account_id.clone(),
            operation: serde_json::to_string(operation)
                .map_err(|_| GateError::Corrupt("operation".into()))?,
            summary: operation.summary(),
            digest: operation.digest(),
            state: State::Pending.as_str().to_owned(),
            created_at: now.unix_timestamp(),
            expires_at: (now + self.ttl).unix_timestamp(),
            wrong_codes: 0,
            used_step: None,
            closed_at: None,
        };
        match self.store.insert_challenge(&row).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                // Lost a race with another hold for the same user.
                let existing = self
                    .pending(&user.id)
                    .await?
                    .ok_or(GateError::Corrupt(row.id.clone()))?;
                return Err(GateError::AlreadyPending(Box::new(existing)));
            }
            Err(other) => return Err(other.into()),
        }
        let challenge = Challenge::try_from(row)?;
        if !self.record(&challenge, Outcome::Held, "", None).await {
            // An operation held without a record would be approvable off the books.
            let now = self.clock.now().unix_timestamp();
            self.store
                .move_challenge(&challenge.id, &["pending"], State::Cancelled.as_str(), now)
                .await?;
            return Err(GateError::Unrecorded);
        }
        Ok(challenge)
    }

    /// Replaces the user's pending challenge `old_id` (with their consent) by `operation`.
    pub async fn replace(
        &self,
        user: &User,
        old_id: &str,
        operation: &InstanceOperation,
    ) -> Result<Challenge, GateError> {
        if let Some(old) = self.challenge_of(user, old_id).await? {
            let now = self.clock.now().unix_timestamp();
            if self
                .store
                .move_challenge(&old.id, &["pending"], State::Replaced.as_str(), now)
                .await?
            {
                self.record(
                    &old,
                    Outcome::Replaced,
                    "replaced by a newer operation",
                    None,
                )
                .await;
            }
        }
        self.hold(user, operation).await
    }

    /// The user's pending challenge (an expired one is expired on the way).
    pub async fn pending(&self, user: &UserId) -> Result<Option<Challenge>, GateError> {
        let Some(row) = self.store.pending_challenge(user).await? else {
            return Ok(None);
        };
        let challenge = Challenge::try_from(row)?;
        if challenge.expires_at <= self.clock.now() {
            self.expire(&challenge).await?;
            return Ok(None);
        }
        Ok(Some(challenge))
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
            Some(row) if row.user_id == user.id.as_str() => Ok(Some(Challenge::try_from(row)?)),
            _ => Ok(None),
        }
    }

    /// The code the app shows for `challenge` now.
    pub async fn current_code(&self, challenge: &Challenge) -> Result<CurrentCode, GateError> {
        let key = self
            .user_key(&challenge.user_id, &challenge.tenant_id)
            .await?;
        let totp = totp_for(&key, &challenge.digest)?;
        let now = unix(self.clock.now());
        Ok(CurrentCode {
            code: totp.generate(now).to_string(),
            seconds_left_in_step: STEP_SECONDS - now % STEP_SECONDS,
        })
    }

    async fn expire(&self, challenge: &Challenge) -> Result<(), GateError> {
        let now = self.clock.now().unix_timestamp();
        if self
            .store
            .move_challenge(&challenge.id, &["pending"], State::Expired.as_str(), now)
            .await?
        {
            self.record(challenge, Outcome::Expired, "", None).await;
        }
        Ok(())
    }

    /// Expires every challenge whose time is up (run periodically); returns them.
    pub async fn expire_due(&self) -> Result<Vec<Challenge>, GateError> {
        let now = self.clock.now();
        // Approvals whose outcome was never recorded (voxgate stopped while running them)
        // are closed as failed with an unknown outcome, so none stays open for ever.
        let stale_before = (now - STALE_APPROVAL).unix_timestamp();
        for row in self.store.stale_approved(stale_before).await? {
            let challenge = Challenge::try_from(row)?;
            if self
                .store
                .move_challenge(
                    &challenge.id,
                    &["approved"],
                    State::Failed.as_str(),
                    now.unix_timestamp(),
                )
                .await?
            {
                self.record(
                    &challenge,
                    Outcome::Failed,
                    "outcome unknown: voxgate stopped while running it; check the instance",
                    None,
                )
                .await;
            }
        }
        let rows = self.store.expire_challenges(now.unix_timestamp()).await?;
        let mut expired = Vec::new();
        for row in rows {
            let challenge = Challenge::try_from(row)?;
            self.record(&challenge, Outcome::Expired, "", None).await;
            expired.push(challenge);
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
    ) -> Result<Verdict, GateError> {
        let challenge = match challenge_id {
            Some(id) => self.challenge_of(user, id).await?,
            None => None,
        };
        let challenge = match challenge {
            Some(c) => c,
            None => match self.store.pending_challenge(&user.id).await? {
                Some(row) => Challenge::try_from(row)?,
                None => return self.nothing_pending(user, spoken).await,
            },
        };
        if challenge.state != State::Pending {
            return self.check(user, challenge, spoken).await;
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
            let current = self.challenge_of(user, &challenge.id).await?;
            match current {
                Some(c) if c.state == State::Pending => {}
                // It was approved, denied or closed meanwhile: check against that.
                Some(c) => return self.check(user, c, spoken).await,
                None => return Ok(Verdict::NothingPending),
            }
            if started.elapsed() > std::time::Duration::from_secs(5) {
                return Ok(Verdict::Busy);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        // Whatever happens in the check, the turn is given back (only by its holder).
        let verdict = async {
            match self.challenge_of(user, &challenge.id).await? {
                Some(c) => self.check(user, c, spoken).await,
                None => Ok(Verdict::NothingPending),
            }
        }
        .await;
        if let Err(error) = self.store.release_check_turn(&challenge.id, &owner).await {
            tracing::warn!(%error, "could not give back a check turn; it lapses in 10 s");
        }
        verdict
    }

    /// Checks a spoken code against `challenge` as it stands (holding its turn if pending).
    async fn check(
        &self,
        user: &User,
        challenge: Challenge,
        spoken: &str,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        if let Some(until) = self.store.user_locked_until(&user.id).await? {
            if until > now.unix_timestamp() {
                self.record(
                    &challenge,
                    Outcome::LockedOut,
                    "code refused unchecked: user locked out",
                    None,
                )
                .await;
                return Ok(Verdict::LockedOut(Duration::seconds(
                    until - now.unix_timestamp(),
                )));
            }
        }

        let key = self.user_key(&user.id, user.tenant_id.as_str()).await?;
        let totp = totp_for(&key, &challenge.digest)?;
        let code = SpokenCode::parse(spoken);
        let matched_step = code
            .as_ref()
            .and_then(|c| totp.check(c.as_str(), unix(now)));

        match challenge.state {
            State::Pending => {}
            State::Approved | State::Executed | State::Failed => {
                return Ok(if matched_step.is_some() {
                    self.record(
                        &challenge,
                        Outcome::Reuse,
                        "code spoken again after approval",
                        None,
                    )
                    .await;
                    Verdict::Reused(challenge)
                } else {
                    Verdict::NothingPending
                });
            }
            State::Expired => return Ok(Verdict::Expired(challenge)),
            State::Denied | State::Cancelled | State::Replaced => {
                return Ok(Verdict::Closed(challenge));
            }
        }
        if challenge.expires_at <= now {
            self.expire(&challenge).await?;
            return Ok(Verdict::Expired(challenge));
        }

        match matched_step {
            Some(step) => {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                if self
                    .store
                    .approve_challenge(&challenge.id, step, now.unix_timestamp())
                    .await?
                {
                    self.store.reset_user_failures(&user.id).await?;
                    let mut approved = challenge;
                    approved.state = State::Approved;
                    if !self.record(&approved, Outcome::Confirmed, "", None).await {
                        // Nothing runs unless its approval is on record.
                        self.store
                            .move_challenge(
                                &approved.id,
                                &["approved"],
                                State::Failed.as_str(),
                                now.unix_timestamp(),
                            )
                            .await?;
                        return Err(GateError::Unrecorded);
                    }
                    Ok(Verdict::Approved(approved))
                } else {
                    // Someone else's confirmation with this code won the race.
                    self.record(
                        &challenge,
                        Outcome::Reuse,
                        "code already used by a concurrent confirmation",
                        None,
                    )
                    .await;
                    Ok(Verdict::Reused(challenge))
                }
            }
            None => self.wrong_code(user, challenge, code.is_some()).await,
        }
    }

    /// Nothing waits for a code; if the code is one that recently approved an operation,
    /// it is a reuse, and is recorded as such.
    async fn nothing_pending(&self, user: &User, spoken: &str) -> Result<Verdict, GateError> {
        let Some(code) = SpokenCode::parse(spoken) else {
            return Ok(Verdict::NothingPending);
        };
        let now = self.clock.now();
        let since = (now - Duration::minutes(10)).unix_timestamp();
        let key = self.user_key(&user.id, user.tenant_id.as_str()).await?;
        for row in self.store.recently_approved(&user.id, since).await? {
            let challenge = Challenge::try_from(row)?;
            if totp_for(&key, &challenge.digest)?
                .check(code.as_str(), unix(now))
                .is_some()
            {
                self.record(
                    &challenge,
                    Outcome::Reuse,
                    "code spoken again with nothing pending",
                    None,
                )
                .await;
                return Ok(Verdict::Reused(challenge));
            }
        }
        Ok(Verdict::NothingPending)
    }

    async fn wrong_code(
        &self,
        user: &User,
        challenge: Challenge,
        well_formed: bool,
    ) -> Result<Verdict, GateError> {
        let now = self.clock.now();
        let failures = self.store.count_user_failure(&user.id).await?;
        if failures >= LOCKOUT_AFTER {
            let doublings = u32::try_from(failures - LOCKOUT_AFTER)
                .unwrap_or(u32::MAX)
                .min(16);
            let delay = (FIRST_LOCKOUT * 2_i32.pow(doublings)).min(MAX_LOCKOUT);
            self.store
                .lock_user(&user.id, (now + delay).unix_timestamp())
                .await?;
        }
        let detail = if well_formed {
            "wrong code"
        } else {
            "not a code"
        };
        let Some(wrong) = self.store.count_wrong_code(&challenge.id).await? else {
            return Ok(Verdict::NothingPending);
        };
        self.record(&challenge, Outcome::WrongCode, detail, None)
            .await;
        if wrong >= MAX_WRONG_CODES {
            if self
                .store
                .move_challenge(
                    &challenge.id,
                    &["pending"],
                    State::Cancelled.as_str(),
                    now.unix_timestamp(),
                )
                .await?
            {
                self.record(
                    &challenge,
                    Outcome::LockedOut,
                    "too many wrong codes: challenge cancelled",
                    None,
                )
                .await;
            }
            return Ok(Verdict::TooManyWrongCodes(challenge));
        }
        Ok(Verdict::WrongCode {
            tries_left: MAX_WRONG_CODES - wrong,
            challenge,
        })
    }

    /// Ends the user's challenge for good: denied in the app. False if it was not pending.
    pub async fn deny(&self, user: &User, id: &str) -> Result<Option<Challenge>, GateError> {
        self.close(user, id, State::Denied, Outcome::Denied).await
    }

    /// Ends the user's challenge for good: cancelled by voice.
    pub async fn cancel(&self, user: &User, id: &str) -> Result<Option<Challenge>, GateError> {
        self.close(user, id, State::Cancelled, Outcome::Cancelled)
            .await
    }

    async fn close(
        &self,
        user: &User,
        id: &str,
        to: State,
        outcome: Outcome,
    ) -> Result<Option<Challenge>, GateError> {
        let Some(challenge) = self.challenge_of(user, id).await? else {
            return Ok(None);
        };
        let now = self.clock.now().unix_timestamp();
        if self
            .store
            .move_challenge(&challenge.id, &["pending"], to.as_str(), now)
            .await?
        {
            self.record(&challenge, outcome, "", None).await;
            let mut closed = challenge;
            closed.state = to;
            return Ok(Some(closed));
        }
        Ok(None)
    }

    /// Records how an approved operation ended.
    pub async fn finish(&self, challenge: &Challenge, result: Result<Option<String>, String>) {
        let now = self.clock.now().unix_timestamp();
        let (to, outcome, detail, request_id) = match result {
            Ok(request_id) => (
                State::Executed,
                Outcome::Executed,
                String::new(),
                request_id,
            ),
            Err(detail) => (State::Failed, Outcome::Failed, detail, None),
        };
        match self
            .store
            .move_challenge(&challenge.id, &["approved"], to.as_str(), now)
            .await
        {
            Ok(_) => {
                self.record(challenge, outcome, &detail, request_id).await;
            }
            Err(error) => {
                tracing::error!(%error, challenge = %challenge.id, "could not record the outcome")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_codes_stay_strings_and_are_padded() {
        assert_eq!(
            SpokenCode::parse("81804").map(|c| c.as_str().to_owned()),
            Some("081804".into())
        );
        assert_eq!(
            SpokenCode::parse("123456").map(|c| c.as_str().to_owned()),
            Some("123456".into())
        );
        assert_eq!(
            SpokenCode::parse(" 7 ").map(|c| c.as_str().to_owned()),
            Some("000007".into())
        );
        for bad in ["", "1234567", "12a456", "-12345", "12 345", "?"] {
            assert!(SpokenCode::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", SpokenCode::parse("123456")),
            "Some(SpokenCode(<redacted>))"
        );
    }

    #[test]
    fn codes_are_bound_to_the_operation() {
        let key = [7u8; 20];
        let a = totp_for(&key, "digest-a").expect("totp");
        let b = totp_for(&key, "digest-b").expect("totp");
        let t = 1_800_000_000;
        let code_a = a.generate(t).to_string();
        assert_eq!(code_a.len(), 6);
        assert!(a.check(&code_a, t).is_some());
        assert_ne!(
            b.generate(t).to_string(),
            code_a,
            "another operation, another code"
        );
        // ±1 step of skew, no more (RFC 6238 §5.2).
        assert!(a.check(&code_a, t + 30).is_some());
        assert!(a.check(&code_a, t + 61).is_none());
        // Another user's key gives other codes.
        let other = totp_for(&[8u8; 20], "digest-a").expect("totp");
        assert_ne!(other.generate(t).to_string(), code_a);
    }
}
