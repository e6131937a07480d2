//! Durable state behind one trait, [`Store`], with one [`connect`] that picks the backend
//! from the URL: SQLite (the embedded default, a file) or PostgreSQL (for several replicas
//! sharing state). Each backend has its own migrations under `migrations/<backend>/`,
//! applied at connect time.
//!
//! The store keeps secrets only sealed (see [`crate::cloud::seal`]); it never sees a
//! plaintext role ARN, ExternalId, key or token.

mod group;
mod ledger;
pub mod model;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;

pub use ledger::{LocalReplayLedger, StoreReplayLedger, replay_ledger};
pub use model::*;
pub use sql::{SqlStore, redact as redact_url, sqlite_file};

/// The default store: `voxgate.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://voxgate.db";

/// "SQLite database /abs/path/voxgate.db" or "PostgreSQL database postgres://…" (without
/// the password), for messages that say which database was used.
pub fn describe(url: &str) -> String {
    match sqlite_file(url) {
        Some(file) => {
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            format!("SQLite database {}", file.display())
        }
        None => format!("PostgreSQL database {}", redact_url(url.trim())),
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with the same unique key exists.
    #[error("{0} already exists")]
    Duplicate(String),
    /// A referenced record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database URL is not one voxgate can use.
    #[error(
        "'{0}' is not a database URL voxgate understands: use sqlite://FILE (or a plain file \
         path) or postgres://USER@HOST:PORT/DB, via --database-url or VOXGATE_DATABASE_URL"
    )]
    BadUrl(String),
    /// Could not connect or migrate.
    #[error("cannot open the database {url}: {reason}")]
    Connect {
        /// The URL, without password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Another process is serving from this SQLite database.
    #[error(
        "another voxgate serve is already using the SQLite database {0}: SQLite is served by one \
         process (stop the other one, or run several replicas on PostgreSQL)"
    )]
    AlreadyServed(String),
    /// The database's writer stayed busy (another write held it for the whole wait).
    #[error("the database stayed busy with other writes; nothing was written")]
    Busy,
    /// A commit failed: none of the transaction's writes happened.
    #[error("database error: the commit failed, nothing was written: {0}")]
    Commit(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Backend(#[from] sqlx::Error),
}

/// Held while this process serves from a store that allows one serving process (SQLite):
/// an exclusive lock on a file beside the database, released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct ServingClaim(#[allow(dead_code)] std::fs::File);

/// Everything voxgate keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is ("sqlite" or "postgres").
    fn backend(&self) -> &'static str;

    /// Whether several processes may serve from this store at once (PostgreSQL). SQLite
    /// is served by one process: see [`Store::claim_for_serving`].
    fn shared(&self) -> bool;

    /// Claims the store for this serving process where only one may serve (waiting a few
    /// seconds for one that is stopping); `AlreadyServed` if another keeps it. `None` where
    /// any number may serve.
    async fn claim_for_serving(&self) -> Result<Option<ServingClaim>, StoreError>;

    /// Recorded request ids whose window has not ended at `now` (to reload a replay guard
    /// kept in memory).
    async fn live_request_ids(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Packed rows of request-id digests (see [`Store::record_request_digests`]) that hold
    /// an id whose window has not ended at `now`.
    async fn live_request_digests(&self, now: i64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Records one packed row of request-id digests: 24 bytes an id (a 16-byte digest,
    /// then when it may be forgotten, 8 bytes big-endian), `forget_after` the latest.
    async fn record_request_digests(
        &self,
        forget_after: i64,
        packed: &[u8],
    ) -> Result<(), StoreError>;

    /// Adds a tenant; its name must be new (regardless of case).
    async fn add_tenant(&self, name: &TenantName, now: i64) -> Result<Tenant, StoreError> {
        let mut tx = self.begin().await?;
        let tenant = tx.add_tenant(name, now).await?;
        tx.commit().await?;
        Ok(tenant)
    }
    /// All tenants, by name.
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// The tenant with this name (regardless of case).
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError>;
    /// The tenant with this id.
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;

    /// Adds a user.
    async fn add_user(&self, user: &NewUser, now: i64) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = tx.add_user(user, now).await?;
        tx.commit().await?;
        Ok(user)
    }
    /// Users, of one tenant or all.
    async fn users(&self, tenant: Option<&TenantId>) -> Result<Vec<User>, StoreError>;
    /// The user enrolled with this Alexa user id.
    async fn user_by_alexa_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// The user enrolled with this OAuth subject.
    async fn user_by_oauth_subject(&self, subject: &str) -> Result<Option<User>, StoreError>;

    /// Links an AWS account.
    async fn add_account(
        &self,
        account: &NewAccount,
        now: i64,
    ) -> Result<LinkedAccount, StoreError> {
        let mut tx = self.begin().await?;
        let account = tx.add_account(account, now).await?;
        tx.commit().await?;
        Ok(account)
    }
    /// Linked accounts, of one tenant or all, by name.
    async fn accounts(&self, tenant: Option<&TenantId>) -> Result<Vec<LinkedAccount>, StoreError>;

    /// Publishes `payload` to every replica sharing this store; false if the backend has
    /// no such channel (SQLite: one process), in which case the caller delivers locally.
    async fn publish_event(&self, payload: &str) -> Result<bool, StoreError>;
    /// Payloads published by any replica (this one included), if the backend carries them.
    fn event_feed(&self) -> Option<tokio::sync::broadcast::Receiver<String>>;

    /// Records Alexa request ids, each until its expiry, in one statement; for each, true
    /// if it was new, false if it was already recorded (a replay). Ids repeated within the
    /// batch must not be passed (the ledger drops them first).
    async fn record_request_ids(
        &self,
        sightings: &[(String, i64)],
    ) -> Result<Vec<bool>, StoreError>;
    /// Forgets request ids (and packed rows of digests) that expired before `before`; how
    /// many ids and rows.
    async fn forget_request_ids(&self, before: i64) -> Result<u64, StoreError>;

    /// Stores one of voxgate's own sealed secrets unless one by that name exists; returns
    /// the one stored (so replicas racing to create it agree).
    async fn service_secret_once(
        &self,
        name: &str,
        sealed: &crate::cloud::seal::Sealed,
    ) -> Result<crate::cloud::seal::Sealed, StoreError>;
    /// One of voxgate's own sealed secrets.
    async fn service_secret(
        &self,
        name: &str,
    ) -> Result<Option<crate::cloud::seal::Sealed>, StoreError>;

    /// A user by id.
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// The unused, unvoided, unexpired pairing codes of `user` (for tests and the CLI).
    async fn live_pairing_codes(&self, user: &UserId, now: i64) -> Result<i64, StoreError>;
    /// The user of the unrevoked device with this token hash.
    async fn device_user(&self, token_hash: &str) -> Result<Option<(String, UserId)>, StoreError>;
    /// Devices, of one user or all.
    async fn devices(&self, user: Option<&UserId>) -> Result<Vec<Device>, StoreError>;
    /// A device by id.
    async fn device(&self, device_id: &str) -> Result<Option<Device>, StoreError>;

    /// Audit records after `after_seq`, oldest first, at most `limit`, of one tenant or all.
    async fn audit_records(
        &self,
        tenant: Option<&TenantId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Every audit record about one challenge, oldest first.
    async fn audit_of_challenge(&self, challenge_id: &str) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest `limit` audit records, of one tenant or all, oldest first.
    async fn audit_tail(
        &self,
        tenant: Option<&TenantId>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The last audit record's sequence number and hash, as the records say.
    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError>;
    /// The audit record at `seq`.
    async fn audit_record(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError>;
    /// Appends one audit record on its own (a transaction of one).
    async fn append_audit(
        &self,
        draft: &AuditDraft,
        chain: &dyn ChainSealer,
    ) -> Result<AuditRecord, StoreError>;

    /// The user's sealed TOTP key, if one was made.
    async fn totp_key(
        &self,
        user: &UserId,
    ) -> Result<Option<crate::cloud::seal::Sealed>, StoreError>;
    /// Stores `key` as the user's TOTP key unless they have one; returns the one they have.
    async fn set_totp_key_once(
        &self,
        user: &UserId,
        key: &crate::cloud::seal::Sealed,
    ) -> Result<crate::cloud::seal::Sealed, StoreError>;

    /// A challenge by id.
    async fn challenge(&self, id: &str) -> Result<Option<ChallengeRow>, StoreError>;
    /// The user's pending challenges, newest first.
    async fn pending_challenges(&self, user: &UserId) -> Result<Vec<ChallengeRow>, StoreError>;
    /// The user's challenges approved by a code since `since` (for reuse detection).
    async fn recently_approved(
        &self,
        user: &UserId,
        since: i64,
    ) -> Result<Vec<ChallengeRow>, StoreError>;
    /// Challenges still `approved` (approved, outcome never recorded) since before `before`.
    async fn stale_approved(&self, before: i64) -> Result<Vec<ChallengeRow>, StoreError>;
    /// Pending challenges whose time is up at `now`.
    async fn due_challenges(&self, now: i64) -> Result<Vec<ChallengeRow>, StoreError>;
    /// Takes the turn to check a code of a pending challenge for `owner` until `until`,
    /// unless someone holds it past `now`. True if taken.
    async fn take_check_turn(
        &self,
        id: &str,
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Gives the turn back, if `owner` still holds it.
    async fn release_check_turn(&self, id: &str, owner: &str) -> Result<(), StoreError>;
    /// Until when the user is locked out (Unix seconds), if they have failures on record.
    async fn user_locked_until(&self, user: &UserId) -> Result<Option<i64>, StoreError>;

    /// Starts a transaction: state changes and the audit records that tell them, written
    /// together or not at all. Dropping it without [`StoreTx::commit`] rolls it back.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;
}

/// One transaction. Every decision of the gate, pairing and revocation is a state change
/// and its audit record in one of these, so neither exists without the other.
#[async_trait]
pub trait StoreTx: Send {
    /// Adds a pending challenge; `Duplicate` if the user already has one.
    async fn insert_challenge(&mut self, challenge: &ChallengeRow) -> Result<(), StoreError>;
    /// Moves a pending, unexpired challenge with fewer than `max_wrong` wrong codes to
    /// `approved` with the code's step. True for exactly one caller, whatever the
    /// concurrency (also across replicas).
    async fn approve_challenge(
        &mut self,
        id: &str,
        step: i64,
        now: i64,
        max_wrong: i64,
    ) -> Result<bool, StoreError>;
    /// Moves a challenge from one of `from` to `to`. True if it moved.
    async fn move_challenge(
        &mut self,
        id: &str,
        from: &[&str],
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Counts a wrong code against a pending challenge; the new count, or `None` if it is
    /// no longer pending.
    async fn count_wrong_code(&mut self, id: &str) -> Result<Option<i64>, StoreError>;
    /// Counts a wrong code against the user; the new consecutive count.
    async fn count_user_failure(&mut self, user: &UserId) -> Result<i64, StoreError>;
    /// Locks the user out until `until` (Unix seconds).
    async fn lock_user(&mut self, user: &UserId, until: i64) -> Result<(), StoreError>;
    /// Forgets the user's wrong codes (after a right one).
    async fn reset_user_failures(&mut self, user: &UserId) -> Result<(), StoreError>;
    /// Stores a pairing code's hash for `user`, valid until `expires_at`, and voids the
    /// user's older unused codes; how many were voided.
    async fn add_pairing_code(
        &mut self,
        code_hash: &str,
        user: &UserId,
        expires_at: i64,
        now: i64,
    ) -> Result<u64, StoreError>;
    /// Uses a pairing code once: the user it was for, if it exists and is unused, unvoided
    /// and unexpired.
    async fn use_pairing_code(
        &mut self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, StoreError>;
    /// Adds a device with its token's hash.
    async fn add_device(
        &mut self,
        device_id: &str,
        user: &UserId,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Revokes a device; false if there is no such unrevoked device.
    async fn revoke_device(&mut self, device_id: &str, now: i64) -> Result<bool, StoreError>;
    /// Adds a tenant; `Duplicate` if one has that name (regardless of case).
    async fn add_tenant(&mut self, name: &TenantName, now: i64) -> Result<Tenant, StoreError>;
    /// Enrols a user; `Duplicate` if the name (in the tenant), the Alexa user id or the
    /// OAuth subject is taken.
    async fn add_user(&mut self, user: &NewUser, now: i64) -> Result<User, StoreError>;
    /// Links an AWS account; `Duplicate` if the tenant has one by that name.
    async fn add_account(
        &mut self,
        account: &NewAccount,
        now: i64,
    ) -> Result<LinkedAccount, StoreError>;
    /// Marks a tenant removed, if it has no users or accounts left.
    async fn remove_tenant(&mut self, id: &TenantId, now: i64) -> Result<Removal, StoreError>;
    /// Marks a user removed unless an operation of theirs is waiting or running: forgets
    /// their Alexa user id, OAuth subject and TOTP key, revokes their devices and voids
    /// their pairing codes.
    async fn remove_user(&mut self, id: &UserId, now: i64) -> Result<Removal, StoreError>;
    /// Marks an account unlinked unless an operation on it is waiting or running, and
    /// wipes its sealed role ARN and ExternalId.
    async fn unlink_account(&mut self, id: &AccountId, now: i64) -> Result<Removal, StoreError>;
    /// Appends an audit record at the chain's head (held until the transaction ends).
    async fn append_audit(
        &mut self,
        draft: &AuditDraft,
        chain: &dyn ChainSealer,
    ) -> Result<AuditRecord, StoreError>;
    /// Makes it all durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
    /// Ends it without writing anything. Unlike dropping it, this returns only once what
    /// this transaction saw of others is committed (on SQLite, the writes that ran before
    /// it in its group), so what is read next, on any connection, is at least as new: use
    /// it when a transaction found it lost a race and the state is read again to say why.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// Opens the store at `url` to look only (no migrations, nothing written, a missing SQLite
/// file not created), with the number of migrations `serve` would apply first.
pub async fn connect_to_look(url: &str) -> Result<(Arc<dyn Store>, usize), StoreError> {
    let (store, pending) = SqlStore::connect_to_look(url).await?;
    Ok((Arc::new(store), pending))
}

/// Opens the store at `url` (applying migrations): `sqlite://FILE`, a plain file path, or
/// `postgres://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqlStore::connect(url).await?))
}
