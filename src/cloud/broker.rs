//! The credential broker: short-lived STS credentials for a linked account's role, with
//! the tenant's ExternalId, a session name and SourceIdentity naming the voxgate user (so
//! the customer's CloudTrail shows who acted), and an inline session policy limited to
//! what the operation needs.
//!
//! Credentials live only in memory, encrypted under a key made at process start; they are
//! refreshed at least five minutes before they expire, and concurrent requests for the
//! same session wait for one STS call (single flight). They are never written to disk, the
//! database or a log.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sts::error::{ProvideErrorMetadata as _, SdkError};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};
use zeroize::{Zeroize, Zeroizing};

use super::arn::{ExternalId, RoleArn};
use super::policy::SessionPolicy;
use super::seal::{Purpose, SealContext, SealError, Sealer};
use crate::clock::Clock;
use crate::store::{LinkedAccount, User};

pub use super::sdk::{MAX_SESSION, MIN_SESSION};
/// Cached credentials are replaced when they have less than this left.
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);
/// Sessions the cache keeps at most by default (`--cached-sessions`); beyond it the
/// earliest-expiring ones nobody is using are dropped (and asked for again when needed).
pub const DEFAULT_CACHED_SESSIONS: usize = 200_000;
/// How often expired sessions are dropped from the cache: not on every call, which would
/// read the whole cache each time (milliseconds at 100,000 sessions).
const SWEEP_EVERY: Duration = Duration::minutes(1);
/// A difference between voxgate's clock and STS's worth a warning.
const CLOCK_SKEW_WARNING: Duration = Duration::minutes(1);

/// Why no session could be had. Details are for the operator log; the skill speaks a
/// sentence per variant.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The stored role ARN or ExternalId could not be opened.
    #[error("could not open the linked account's sealed details: {0}")]
    Unseal(#[from] SealError),
    /// STS refused: the role's trust policy or the ExternalId does not match.
    #[error("STS refused to assume the role (trust policy or ExternalId): {0}")]
    TrustRejected(String),
    /// STS could not be reached.
    #[error("STS could not be reached: {0}")]
    Unreachable(String),
    /// Anything else from STS.
    #[error("STS error: {0}")]
    Sts(String),
}

/// Credentials for one session, usable to build clients. `Debug` redacts them.
#[derive(Clone)]
pub struct AwsSession {
    credentials: aws_sdk_ec2::config::Credentials,
    sdk: aws_config::SdkConfig,
    default_region: String,
    aws_account: String,
}

impl fmt::Debug for AwsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSession")
            .field("default_region", &self.default_region)
            .finish_non_exhaustive()
    }
}

impl AwsSession {
    /// An EC2 client for reads, acting with this session, in `region` or the account's
    /// default.
    pub fn ec2(&self, region: Option<&str>) -> aws_sdk_ec2::Client {
        self.ec2_with(region, super::sdk::read_retries())
    }

    /// An EC2 client for a change: sent once, never retried (a retry after a lost answer
    /// could run it twice).
    pub fn ec2_for_change(&self, region: Option<&str>) -> aws_sdk_ec2::Client {
        self.ec2_with(region, super::sdk::change_retries())
    }

    fn ec2_with(
        &self,
        region: Option<&str>,
        retries: aws_config::retry::RetryConfig,
    ) -> aws_sdk_ec2::Client {
        let region = region.unwrap_or(&self.default_region).to_owned();
        let config = aws_sdk_ec2::config::Builder::from(&self.sdk)
            .credentials_provider(self.credentials.clone())
            .region(aws_sdk_ec2::config::Region::new(region))
            .timeout_config(super::sdk::timeouts())
            .retry_config(retries)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    /// SDK settings acting with this session in `region` (or the account's default), with
    /// voxgate's timeouts: reads may be tried twice, a change (`change` true) is sent once.
    /// Families build the client of their service from it, e.g.
    /// `aws_sdk_budgets::Client::new(&session.config(Some("us-east-1"), false))`.
    pub fn config(&self, region: Option<&str>, change: bool) -> aws_config::SdkConfig {
        let region = region.unwrap_or(&self.default_region).to_owned();
        self.sdk
            .to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                self.credentials.clone(),
            ))
            .region(aws_config::Region::new(region))
            .timeout_config(super::sdk::timeouts())
            .retry_config(if change {
                super::sdk::change_retries()
            } else {
                super::sdk::read_retries()
            })
            .build()
    }

    /// The 12-digit AWS account it acts in (for APIs that name it, like Budgets).
    pub fn aws_account(&self) -> &str {
        &self.aws_account
    }

    /// The account's default region.
    pub fn default_region(&self) -> &str {
        &self.default_region
    }
}

/// What a cached session is for: the SHA-256 of the account id, the user id (the session's
/// SourceIdentity names the user) and the session policy's JSON. 32 bytes in place of the
/// three (the policy JSON alone is ~110 bytes, the same for thousands of entries).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey([u8; 32]);

impl CacheKey {
    fn new(account: &str, user: &str, policy_json: &str) -> Self {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        // Ids never hold a NUL, so the parts cannot run into each other.
        for part in [account, "\0", user, "\0", policy_json] {
            context.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        Self(key)
    }
}

/// Encrypted credentials and when they expire, by voxgate's own clock and by the
/// machine's monotonic clock (which a wall clock set back by NTP does not move). Kept
/// small: there may be hundreds of thousands.
struct Entry {
    sealed: Box<[u8]>,
    /// Unix seconds, by [`Clock::now`].
    expires_at: i64,
    /// Seconds of [`Clock::monotonic`].
    deadline: u64,
    /// The role's 12-digit AWS account.
    aws_account: u64,
}

impl Entry {
    /// Whether more than [`REFRESH_MARGIN`] is left by both clocks.
    fn fresh(&self, clock: &dyn Clock) -> bool {
        let margin = REFRESH_MARGIN.whole_seconds();
        self.expires_at - clock.now().unix_timestamp() > margin
            && self.deadline.saturating_sub(clock.monotonic().as_secs()) > margin.unsigned_abs()
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The cached sessions and when expired ones are next dropped.
struct Cache {
    slots: HashMap<CacheKey, Slot>,
    next_sweep: OffsetDateTime,
}

impl Cache {
    /// When `slot` expires (Unix seconds), if nobody uses it now (`None`: someone waits
    /// on it or holds it, so it stays).
    fn idle_expiry(slot: &Slot) -> Option<i64> {
        if Arc::strong_count(slot) > 1 {
            return None;
        }
        let entry = slot.try_lock().ok()?;
        // A slot whose STS call failed holds nothing: it may go.
        Some(entry.as_ref().map_or(i64::MIN, |e| e.expires_at))
    }

    /// Drops expired sessions nobody uses; then, beyond `capacity`, the earliest-expiring
    /// idle ones until an eighth of the room is free (so this runs once per many inserts).
    fn sweep(&mut self, now: OffsetDateTime, capacity: usize) {
        self.next_sweep = now + SWEEP_EVERY;
        let now = now.unix_timestamp();
        self.slots
            .retain(|_, slot| Self::idle_expiry(slot).is_none_or(|expires| expires > now));
        if self.slots.len() < capacity {
            return;
        }
        let keep = (capacity - capacity / 8).min(capacity - 1);
        let mut idle: Vec<(i64, CacheKey)> = self
            .slots
            .iter()
            .filter_map(|(key, slot)| Self::idle_expiry(slot).map(|e| (e, *key)))
            .collect();
        let excess = (self.slots.len() - keep).min(idle.len());
        if excess == 0 {
            return;
        }
        if excess < idle.len() {
            idle.select_nth_unstable_by_key(excess - 1, |(expires, _)| *expires);
        }
        for (_, key) in idle.into_iter().take(excess) {
            self.slots.remove(&key);
        }
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE_EVICTIONS).increment(excess as u64);
    }
}

#[derive(Zeroize)]
#[zeroize(drop)]
struct PlainCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// The session token is kept decoded when it is base64 that encodes back to itself (as
/// STS's are): a quarter smaller in memory, for the largest part of a cached session.
const TOKEN_DECODED: u8 = 1;

impl PlainCredentials {
    /// A compact encoding: a flag byte, the key id and the secret each after a 2-byte
    /// length, then the token (decoded from base64 when that round-trips exactly).
    fn to_bytes(&self) -> Option<Zeroizing<Vec<u8>>> {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let decoded = engine
            .decode(&self.session_token)
            .ok()
            .map(Zeroizing::new)
            .filter(|bytes| *Zeroizing::new(engine.encode(bytes.as_slice())) == self.session_token);
        let mut out = Zeroizing::new(Vec::with_capacity(
            5 + self.access_key_id.len() + self.secret_access_key.len() + self.session_token.len(),
        ));
        out.push(if decoded.is_some() { TOKEN_DECODED } else { 0 });
        for field in [&self.access_key_id, &self.secret_access_key] {
            out.extend_from_slice(&u16::try_from(field.len()).ok()?.to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        match &decoded {
            Some(bytes) => out.extend_from_slice(bytes),
            None => out.extend_from_slice(self.session_token.as_bytes()),
        }
        Some(out)
    }

    /// What [`PlainCredentials::to_bytes`] wrote.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        use base64::Engine as _;
        let (&flags, mut rest) = bytes.split_first()?;
        let mut field = || -> Option<String> {
            let (length, tail) = rest.split_at_checked(2)?;
            let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
            let (value, tail) = tail.split_at_checked(length)?;
            rest = tail;
            String::from_utf8(value.to_vec()).ok()
        };
        let access_key_id = field()?;
        let secret_access_key = field()?;
        let session_token = if flags & TOKEN_DECODED != 0 {
            base64::engine::general_purpose::STANDARD.encode(rest)
        } else {
            String::from_utf8(rest.to_vec()).ok()?
        };
        Some(Self {
            access_key_id,
            secret_access_key,
            session_token,
        })
    }
}

/// Hands out sessions for linked accounts.
pub struct Broker {
    sdk: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
    duration: Duration,
    cache: Mutex<Cache>,
    capacity: usize,
    memory_key: LessSafeKey,
    rng: SystemRandom,
    sts_calls: AtomicU64,
    /// Whether a clock skew against STS was logged already (once per process).
    skew_said: AtomicBool,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// Keeps what IAM accepts in a session name or source identity (`[\w+=,.@-]`).
fn iam_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A short stable suffix of the user's id (8 hex digits of its SHA-256), so two people of
/// the same name (in two tenants) never appear as one in CloudTrail.
fn user_suffix(user: &User) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, user.id.as_str().as_bytes());
    hex::encode(&digest.as_ref()[..4])
}

/// `<name>-<suffix>`, the name cut so the whole fits in `max` characters.
fn named(prefix: &str, user: &User, max: usize) -> String {
    let suffix = user_suffix(user);
    let mut name = format!("{prefix}{}", iam_safe(&user.name));
    name.truncate(max - suffix.len() - 1);
    format!("{name}-{suffix}")
}

/// `RoleSessionName`: `voxgate-<user>-<suffix>`, at most 64 characters.
pub fn role_session_name(user: &User) -> String {
    named("voxgate-", user, 64)
}

/// `SourceIdentity`: `<user>-<suffix>`, 2 to 64 characters; CloudTrail shows it on every
/// action taken with the session.
pub fn source_identity(user: &User) -> String {
    named("", user, 64)
}

impl Broker {
    /// A broker using voxgate's own AWS identity from `sdk`; `duration` is clamped to
    /// 900..=3600 s.
    pub fn new(
        sdk: aws_config::SdkConfig,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
        duration: Duration,
    ) -> Result<Self, BrokerError> {
        let rng = SystemRandom::new();
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(key.as_mut())
            .map_err(|_| BrokerError::Sts("no randomness available".into()))?;
        let memory_key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key.as_ref())
                .map_err(|_| BrokerError::Sts("could not make the memory key".into()))?,
        );
        let sts = aws_sdk_sts::config::Builder::from(&sdk)
            .timeout_config(super::sdk::timeouts())
            .retry_config(super::sdk::read_retries())
            .build();
        Ok(Self {
            sts: aws_sdk_sts::Client::from_conf(sts),
            sdk,
            sealer,
            clock,
            duration: duration.clamp(MIN_SESSION, MAX_SESSION),
            cache: Mutex::new(Cache {
                slots: HashMap::new(),
                next_sweep: OffsetDateTime::UNIX_EPOCH,
            }),
            capacity: DEFAULT_CACHED_SESSIONS,
            memory_key,
            rng,
            sts_calls: AtomicU64::new(0),
            skew_said: AtomicBool::new(false),
        })
    }

    /// The same broker keeping at most `sessions` cached sessions (at least 1).
    #[must_use]
    pub fn with_capacity(mut self, sessions: usize) -> Self {
        self.capacity = sessions.max(1);
        self
    }

    /// How many sessions are cached now.
    pub fn cached_sessions(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slots
            .len()
    }

    /// How many AssumeRole calls this broker made.
    pub fn sts_calls(&self) -> u64 {
        self.sts_calls.load(Ordering::Relaxed)
    }

    /// The 12-digit AWS account of `account`'s role (opened from the sealed ARN), for
    /// resource ARNs in session policies.
    pub async fn aws_account_of(&self, account: &LinkedAccount) -> Result<String, BrokerError> {
        let arn = self
            .sealer
            .open(
                &account.role_arn,
                &SealContext::new(
                    account.tenant_id.as_str(),
                    Purpose::RoleArn,
                    account.id.as_str(),
                ),
            )
            .await?;
        let arn = RoleArn::parse(&String::from_utf8_lossy(&arn))
            .map_err(|_| BrokerError::Unseal(SealError::Corrupt))?;
        Ok(arn.account().to_owned())
    }

    /// A session for `user` in `account`, allowed only `policy`.
    ///
    /// Sessions are cached per account, user and policy: the user is part of the key
    /// because the session's SourceIdentity names them.
    pub async fn session(
        &self,
        account: &LinkedAccount,
        user: &User,
        policy: &SessionPolicy,
    ) -> Result<AwsSession, BrokerError> {
        self.session_lasting(account, user, policy, self.duration)
            .await
    }

    /// A session for one critical operation: the shortest lifetime STS grants (900 s),
    /// whatever `--session-duration` says.
    pub async fn operation_session(
        &self,
        account: &LinkedAccount,
        user: &User,
        policy: &SessionPolicy,
    ) -> Result<AwsSession, BrokerError> {
        self.session_lasting(account, user, policy, MIN_SESSION)
            .await
    }

    /// A session to check a link with (`voxgate account check`): allowed only `policy`
    /// (the probes; a session policy only narrows, so what the role refuses stays refused),
    /// the shortest lifetime, never cached. CloudTrail names `who` as its source identity.
    pub async fn probe(
        &self,
        account: &LinkedAccount,
        who: &User,
        policy: &SessionPolicy,
    ) -> Result<AwsSession, BrokerError> {
        let (plain, expires_at, aws_account) = self
            .assume(account, who, Some(&policy.to_json()), MIN_SESSION)
            .await?;
        let expiry = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                u64::try_from(expires_at.unix_timestamp()).unwrap_or(0),
            );
        Ok(AwsSession {
            credentials: aws_sdk_ec2::config::Credentials::new(
                plain.access_key_id.clone(),
                plain.secret_access_key.clone(),
                Some(plain.session_token.clone()),
                Some(expiry),
                "voxgate-broker",
            ),
            sdk: self.sdk.clone(),
            default_region: account.region.clone(),
            aws_account,
        })
    }

    async fn session_lasting(
        &self,
        account: &LinkedAccount,
        user: &User,
        policy: &SessionPolicy,
        duration: Duration,
    ) -> Result<AwsSession, BrokerError> {
        let policy_json = policy.to_json();
        let key = CacheKey::new(account.id.as_str(), user.id.as_str(), &policy_json);
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.clock.now();
            if let Some(slot) = cache.slots.get(&key) {
                Arc::clone(slot)
            } else {
                // Expired sessions are dropped every minute, or at once when the cache is
                // full, so the map stays bounded without reading it whole on every call.
                if now >= cache.next_sweep || cache.slots.len() >= self.capacity {
                    cache.sweep(now, self.capacity);
                }
                Arc::clone(cache.slots.entry(key).or_default())
            }
        };
        // Single flight: whoever holds the slot refreshes; the others wait and reuse.
        let mut entry = slot.lock().await;
        if let Some(cached) = entry.as_ref()
            && cached.fresh(self.clock.as_ref())
        {
            metrics::counter!(crate::metrics::CREDENTIAL_CACHE, "result" => "hit").increment(1);
            return self.session_from(cached, &key, &account.region);
        }
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE, "result" => "miss").increment(1);
        let asked = self.clock.monotonic().as_secs();
        let duration = duration.clamp(MIN_SESSION, MAX_SESSION);
        let (plain, expires_at, aws_account) = self
            .assume(account, user, Some(&policy_json), duration)
            .await?;
        let fresh = Entry {
            sealed: self.encrypt(&plain, &key)?,
            expires_at: expires_at.unix_timestamp(),
            deadline: asked + duration.whole_seconds().unsigned_abs(),
            aws_account: aws_account
                .parse()
                .map_err(|_| BrokerError::Unseal(SealError::Corrupt))?,
        };
        let session = self.session_from(&fresh, &key, &account.region);
        *entry = Some(fresh);
        session
    }

    async fn assume(
        &self,
        account: &LinkedAccount,
        user: &User,
        policy_json: Option<&str>,
        duration: Duration,
    ) -> Result<(PlainCredentials, OffsetDateTime, String), BrokerError> {
        let tenant = account.tenant_id.as_str();
        let role_arn = self
            .sealer
            .open(
                &account.role_arn,
                &SealContext::new(tenant, Purpose::RoleArn, account.id.as_str()),
            )
            .await?;
        let role_arn = RoleArn::parse(&String::from_utf8_lossy(&role_arn))
            .map_err(|_| BrokerError::Unseal(SealError::Corrupt))?;
        let external_id = self
            .sealer
            .open(
                &account.external_id,
                &SealContext::new(tenant, Purpose::ExternalId, account.id.as_str()),
            )
            .await?;
        let external_id =
            ExternalId::from_opened(String::from_utf8_lossy(&external_id).into_owned());

        self.sts_calls.fetch_add(1, Ordering::Relaxed);
        let duration = duration.clamp(MIN_SESSION, MAX_SESSION);
        let asked_at = self.clock.now();
        let seconds = i32::try_from(duration.whole_seconds()).unwrap_or(900);
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn.as_str())
            .role_session_name(role_session_name(user))
            .source_identity(source_identity(user))
            .external_id(external_id.expose())
            .duration_seconds(seconds)
            .set_policy(policy_json.map(str::to_owned))
            .send()
            .await
            .map_err(classify);
        let result = match &out {
            Ok(_) => "ok",
            Err(BrokerError::TrustRejected(_)) => "refused",
            Err(BrokerError::Unreachable(_)) => "unreachable",
            Err(_) => "error",
        };
        metrics::counter!(crate::metrics::STS_CALLS, "result" => result).increment(1);
        let out = out?;
        let credentials = out
            .credentials()
            .ok_or_else(|| BrokerError::Sts("AssumeRole returned no credentials".into()))?;
        let stated = OffsetDateTime::from_unix_timestamp(credentials.expiration().secs())
            .map_err(|_| BrokerError::Sts("AssumeRole returned a bad expiry".into()))?;
        // STS grants exactly the DurationSeconds asked for (or refuses), so the session
        // lasts `duration` from before the call was sent, measured by voxgate's own clock
        // (and, in the cache, by the monotonic clock too, so setting the wall clock back
        // does not keep expired credentials). The expiry STS states is by AWS's clock:
        // compared with ours, a skew of minutes would make fresh credentials look nearly
        // expired (every call asking STS again). It is only checked, and a skew said once.
        let expires_at = asked_at + duration;
        let skew = stated - expires_at;
        if skew.abs() > CLOCK_SKEW_WARNING && !self.skew_said.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                skew_seconds = skew.whole_seconds(),
                "this machine's clock and AWS's differ by more than a minute; voxgate keeps \
                 STS sessions by its own clock, but request signing and certificate checks \
                 need the right time: check NTP"
            );
        }
        Ok((
            PlainCredentials {
                access_key_id: credentials.access_key_id().to_owned(),
                secret_access_key: credentials.secret_access_key().to_owned(),
                session_token: credentials.session_token().to_owned(),
            },
            expires_at,
            role_arn.account().to_owned(),
        ))
    }

    /// The nonce, the credentials encrypted in place after it, and the tag: one
    /// allocation of the exact size, bound to `key`.
    fn encrypt(&self, plain: &PlainCredentials, key: &CacheKey) -> Result<Box<[u8]>, BrokerError> {
        let memory_error = || BrokerError::Sts("could not protect credentials in memory".into());
        let plain = plain.to_bytes().ok_or_else(memory_error)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| memory_error())?;
        let mut sealed = vec![0u8; NONCE_LEN + plain.len() + AES_256_GCM.tag_len()];
        let (head, tail) = sealed.split_at_mut(NONCE_LEN + plain.len());
        head[..NONCE_LEN].copy_from_slice(&nonce);
        head[NONCE_LEN..].copy_from_slice(&plain);
        let tag = self
            .memory_key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.0),
                &mut head[NONCE_LEN..],
            )
            .map_err(|_| memory_error())?;
        tail.copy_from_slice(tag.as_ref());
        Ok(sealed.into_boxed_slice())
    }

    fn session_from(
        &self,
        entry: &Entry,
        key: &CacheKey,
        region: &str,
    ) -> Result<AwsSession, BrokerError> {
        let memory_error = || BrokerError::Sts("could not read credentials from memory".into());
        let (nonce, ciphertext) = entry.sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| memory_error())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .memory_key
            .open_in_place(nonce, Aad::from(key.0), buffer.as_mut_slice())
            .map_err(|_| memory_error())?;
        let plain = PlainCredentials::from_bytes(plain).ok_or_else(memory_error)?;
        let expiry = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(entry.expires_at).unwrap_or(0));
        Ok(AwsSession {
            credentials: aws_sdk_ec2::config::Credentials::new(
                plain.access_key_id.clone(),
                plain.secret_access_key.clone(),
                Some(plain.session_token.clone()),
                Some(expiry),
                "voxgate-broker",
            ),
            sdk: self.sdk.clone(),
            default_region: region.to_owned(),
            aws_account: format!("{:012}", entry.aws_account),
        })
    }
}

fn classify(
    error: SdkError<
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_sdk_sts::config::http::HttpResponse,
    >,
) -> BrokerError {
    use aws_sdk_sts::operation::RequestId as _;
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            let status = service.raw().status().as_u16();
            let request_id = service.err().request_id().unwrap_or("-");
            // STS refuses with AccessDenied (HTTP 403). When the error body cannot be read
            // (moto's IAM checks answer in another XML envelope), the status still says it.
            let refused = code == Some("AccessDenied") || (code.is_none() && status == 403);
            // AWS error messages name the role ARN (and so the customer's account): only
            // the code, status and request id are kept.
            let summary = format!(
                "{} (HTTP {status}, request {request_id})",
                code.unwrap_or("Unknown")
            );
            if refused {
                BrokerError::TrustRejected(summary)
            } else {
                BrokerError::Sts(summary)
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            BrokerError::Unreachable("no answer from STS".into())
        }
        SdkError::ResponseError(_) => BrokerError::Sts("unreadable answer from STS".into()),
        _ => BrokerError::Sts("the request could not be built or sent".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{TenantId, UserId};

    fn user(name: &str) -> User {
        User {
            id: UserId("u_1".into()),
            tenant_id: TenantId("t_1".into()),
            name: name.into(),
            alexa_user_id: None,
            oauth_subject: None,
            created_at: 0,
        }
    }

    #[test]
    fn credentials_come_back_as_they_went_in() {
        for token in [
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
            "FQoGZXIvYXdzEBYaDHhBTEXAMPLETOKEN",
            "not base64: spaces and ü",
            "YQ",
            "",
        ] {
            let plain = PlainCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                session_token: token.into(),
            };
            let bytes = plain.to_bytes().expect("encodes");
            let back = PlainCredentials::from_bytes(&bytes).expect("decodes");
            assert_eq!(back.access_key_id, plain.access_key_id);
            assert_eq!(back.secret_access_key, plain.secret_access_key);
            assert_eq!(back.session_token, token, "{token}");
        }
        let long = "QUJD".repeat(256);
        let plain = PlainCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: long.clone(),
        };
        let bytes = plain.to_bytes().expect("encodes");
        assert!(
            bytes.len() < 800,
            "a base64 token is kept decoded: {}",
            bytes.len()
        );
        assert_eq!(
            PlainCredentials::from_bytes(&bytes)
                .expect("decodes")
                .session_token,
            long
        );
        assert!(PlainCredentials::from_bytes(&bytes[..5]).is_none());
    }

    #[test]
    fn session_names_are_what_iam_accepts_and_unique_per_user() {
        let ada = user("Ada Lovelace");
        let suffix = user_suffix(&ada);
        assert_eq!(suffix.len(), 8);
        assert_eq!(
            role_session_name(&ada),
            format!("voxgate-Ada-Lovelace-{suffix}")
        );
        assert_eq!(source_identity(&ada), format!("Ada-Lovelace-{suffix}"));
        assert_eq!(source_identity(&user("x")), format!("x-{suffix}"));
        assert_eq!(role_session_name(&user(&"a".repeat(80))).len(), 64);
        assert_eq!(source_identity(&user(&"a".repeat(80))).len(), 64);
        assert!(
            source_identity(&user(&"a".repeat(80))).ends_with(&suffix),
            "the suffix survives a long name"
        );
        // Another person of the same name, in another tenant: another identity.
        let mut namesake = user("Ada Lovelace");
        namesake.id = UserId("u_2".into());
        assert_ne!(source_identity(&namesake), source_identity(&ada));
        assert_ne!(role_session_name(&namesake), role_session_name(&ada));
    }
}
