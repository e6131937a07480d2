//! The audit trail: every decision about an operation (held, confirmed, wrong code, reuse,
//! denied, cancelled, expired, executed, failed, refused by the tag guard) appended to a
//! hash-chained log in the store. Each record's hash is an HMAC-SHA256, under a chain key
//! sealed like every other secret, over a canonical encoding of its fields and the previous
//! record's hash. Editing, deleting or reordering a record breaks the chain from there on,
//! and `voxgate audit verify` finds the first break; rewriting the chain to hide an edit
//! needs the key, which database access alone does not give. Dropping the newest records is
//! seen against signed checkpoints kept outside the database ([`checkpoint`]) or a head noted
//! elsewhere (`audit verify --expect-head`).
//!
//! Every record names the challenge it is about and who acted, so one challenge's story
//! can be read from the log. Records hold summaries, digests and outcomes, never codes, keys
//! or credentials. Knows the store, nothing of HTTP or Alexa.

pub mod checkpoint;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;
use serde::Serialize;

use crate::cloud::ServiceKeyError;
use crate::cloud::seal::Sealer;
pub use crate::store::AuditRecord as Record;
use crate::store::{AuditDraft, ChainSealer, Store, StoreError, StoreTx};

/// The key the chain's HMACs are made with. `Debug` redacts it.
#[derive(Clone)]
pub struct ChainKey(hmac::Key);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

/// The name of the audit chain key among voxgate's own sealed secrets.
pub const CHAIN_KEY_NAME: &str = "audit-chain-key";

impl ChainKey {
    /// The deployment's chain key, made and sealed on first use. A log that has records but
    /// no key is an error, never a reason to make a new key: that would let a chain be
    /// rewritten under a fresh key without anyone noticing.
    pub async fn load(store: &dyn Store, sealer: &Sealer) -> Result<Self, ChainKeyError> {
        if store.service_secret(CHAIN_KEY_NAME).await?.is_none()
            && store.audit_last().await?.is_some()
        {
            return Err(ChainKeyError::Missing);
        }
        let key = crate::cloud::service_key(store, sealer, CHAIN_KEY_NAME).await?;
        Ok(Self::from_bytes(&key))
    }

    /// The chain key if the deployment has one (never makes it: for reading the log).
    pub async fn existing(
        store: &dyn Store,
        sealer: &Sealer,
    ) -> Result<Option<Self>, ServiceKeyError> {
        if store.service_secret(CHAIN_KEY_NAME).await?.is_none() {
            return Ok(None);
        }
        let key = crate::cloud::service_key(store, sealer, CHAIN_KEY_NAME).await?;
        Ok(Some(Self::from_bytes(&key)))
    }

    /// A key from raw bytes.
    pub fn from_bytes(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// A key derived from this one for another use (e.g. signing checkpoints), so one
    /// sealed secret serves both without the two uses being interchangeable.
    pub fn derive(&self, label: &str) -> hmac::Key {
        let derived = hmac::sign(&self.0, format!("voxgate-derive\n{label}").as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }
}

/// Why the chain key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ChainKeyError {
    /// The log has records but the key that chains them is gone.
    #[error(
        "the audit log has records but its chain key is missing from the database, so the log \
         cannot be verified or continued; restore the database's service_secrets table from a \
         backup (voxgate will not make a new key over an existing log)"
    )]
    Missing,
    /// The store or the sealing failed.
    #[error(transparent)]
    Key(#[from] ServiceKeyError),
}

impl From<StoreError> for ChainKeyError {
    fn from(error: StoreError) -> Self {
        Self::Key(ServiceKeyError::Store(error))
    }
}

impl ChainSealer for ChainKey {
    fn seal(&self, draft: &AuditDraft, seq: i64, prev_hash: &str) -> Record {
        let mut record = Record {
            seq,
            at: draft.at,
            tenant_id: draft.tenant_id.clone(),
            user_id: draft.user_id.clone(),
            challenge_id: draft.challenge_id.clone(),
            actor: draft.actor.clone(),
            summary: draft.summary.clone(),
            digest: draft.digest.clone(),
            outcome: draft.outcome.clone(),
            detail: draft.detail.clone(),
            aws_request_id: draft.aws_request_id.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            format: RECORD_FORMAT,
        };
        record.hash = expected_hash(&record, self);
        record
    }
}

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How records are hashed from now on: format 3 covers the challenge and the actor.
pub const RECORD_FORMAT: i64 = 3;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A critical operation was held for a code.
    Held,
    /// The right code was spoken; the operation was approved.
    Confirmed,
    /// A wrong code was spoken.
    WrongCode,
    /// The right code was spoken again after it had approved the operation.
    Reuse,
    /// A code was spoken for an operation that was already approved (not its code).
    CodeAfterApproval,
    /// A code was spoken for an operation denied in the app.
    CodeAfterDeny,
    /// A code was spoken for an operation cancelled by voice.
    CodeAfterCancel,
    /// A code was spoken for an operation replaced by a newer one.
    CodeAfterReplace,
    /// A code was spoken for an operation whose time ran out.
    CodeAfterExpiry,
    /// A code was spoken for an operation cancelled after too many wrong codes.
    CodeAfterWrongCodes,
    /// Denied from the companion app.
    Denied,
    /// Cancelled by voice.
    Cancelled,
    /// Replaced by a newer operation, with the person's consent.
    Replaced,
    /// Expired before a right code was spoken.
    Expired,
    /// The last allowed wrong code: the challenge was cancelled.
    TooManyWrongCodes,
    /// A code was refused unchecked: the user is locked out.
    LockedOut,
    /// The operation ran.
    Executed,
    /// The operation was attempted and failed; nothing was changed.
    Failed,
    /// Whether the operation ran cannot be known (no answer in time, or voxgate stopped
    /// while running it). Never retried.
    OutcomeUnknown,
    /// A stored challenge could not be read and was closed; nothing ran.
    Unreadable,
    /// Refused before holding: the target lacks the managed tag.
    RefusedByTagGuard,
    /// A pairing code was issued (older unused ones voided).
    PairingCodeIssued,
    /// A device was paired.
    Paired,
    /// A pairing attempt failed (unknown, used or expired code).
    PairingFailed,
    /// A device unpaired itself.
    Unpaired,
    /// The operator revoked a device.
    DeviceRevoked,
    /// The operator added a tenant.
    TenantAdded,
    /// The operator removed a tenant.
    TenantRemoved,
    /// The operator enrolled a user.
    UserEnrolled,
    /// The operator removed a user (their devices revoked, their identities forgotten).
    UserRemoved,
    /// The operator linked an AWS account.
    AccountLinked,
    /// The operator unlinked an AWS account (its role ARN and ExternalId wiped).
    AccountUnlinked,
    /// The operator had an account's ExternalId shown again.
    AccountShown,
    /// The operator checked an account's link (voxgate assumed its role to probe it).
    AccountChecked,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::WrongCode => "wrong-code",
            Self::Reuse => "reuse",
            Self::CodeAfterApproval => "code-after-approval",
            Self::CodeAfterDeny => "code-after-deny",
            Self::CodeAfterCancel => "code-after-cancel",
            Self::CodeAfterReplace => "code-after-replace",
            Self::CodeAfterExpiry => "code-after-expiry",
            Self::CodeAfterWrongCodes => "code-after-wrong-codes",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Replaced => "replaced",
            Self::Expired => "expired",
            Self::TooManyWrongCodes => "too-many-wrong-codes",
            Self::LockedOut => "locked-out",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::OutcomeUnknown => "outcome-unknown",
            Self::Unreadable => "unreadable",
            Self::RefusedByTagGuard => "refused-by-tag-guard",
            Self::PairingCodeIssued => "pairing-code-issued",
            Self::Paired => "paired",
            Self::PairingFailed => "pairing-failed",
            Self::Unpaired => "unpaired",
            Self::DeviceRevoked => "device-revoked",
            Self::TenantAdded => "tenant-added",
            Self::TenantRemoved => "tenant-removed",
            Self::UserEnrolled => "user-enrolled",
            Self::UserRemoved => "user-removed",
            Self::AccountLinked => "account-linked",
            Self::AccountUnlinked => "account-unlinked",
            Self::AccountShown => "account-shown",
            Self::AccountChecked => "account-checked",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person through Alexa, in this session.
    AlexaSession(String),
    /// A paired companion device.
    Device(String),
    /// The operator, through the CLI.
    Operator,
    /// voxgate itself (the sweeper, start-up).
    Voxgate,
    /// Someone unidentified from this network source (failed pairing attempts).
    Source(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlexaSession(id) => write!(f, "alexa-session:{id}"),
            Self::Device(id) => write!(f, "device:{id}"),
            Self::Operator => f.write_str("operator"),
            Self::Voxgate => f.write_str("voxgate"),
            Self::Source(addr) => write!(f, "source:{addr}"),
        }
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unix seconds.
    pub at: i64,
    /// Tenant id, if known.
    pub tenant_id: Option<String>,
    /// User id, if known.
    pub user_id: Option<String>,
    /// The challenge it is about, if any.
    pub challenge_id: Option<String>,
    /// Who acted.
    pub actor: Actor,
    /// The operation's canonical summary.
    pub summary: String,
    /// The operation's digest (hex).
    pub digest: String,
    /// What happened.
    pub outcome: Outcome,
    /// A short explanation (never a secret or a code).
    pub detail: String,
    /// AWS request id of the call, where there is one.
    pub aws_request_id: Option<String>,
}

impl Entry {
    /// The draft the store chains.
    pub fn draft(&self) -> AuditDraft {
        AuditDraft {
            at: self.at,
            tenant_id: self.tenant_id.clone(),
            user_id: self.user_id.clone(),
            challenge_id: self.challenge_id.clone(),
            actor: Some(self.actor.to_string()),
            summary: self.summary.clone(),
            digest: self.digest.clone(),
            outcome: self.outcome.as_str().to_owned(),
            detail: self.detail.clone(),
            aws_request_id: self.aws_request_id.clone(),
        }
    }
}

/// The hash `record` must have: HMAC-SHA256 under the chain key over a domain tag and the
/// canonical JSON array of every field but the hash, in a fixed order. Format 2 (records
/// written before challenge and actor were recorded) is still verified as it was made; a
/// record cannot be moved between formats, since each has its own domain tag.
pub fn expected_hash(record: &Record, key: &ChainKey) -> String {
    let (tag, canonical): (&[u8], serde_json::Value) = if record.format == 2 {
        (
            b"voxgate-audit-v2\n",
            serde_json::json!([
                record.seq,
                record.at,
                record.tenant_id,
                record.user_id,
                record.summary,
                record.digest,
                record.outcome,
                record.detail,
                record.aws_request_id,
                record.prev_hash,
            ]),
        )
    } else {
        (
            b"voxgate-audit-v3\n",
            serde_json::json!([
                record.format,
                record.seq,
                record.at,
                record.tenant_id,
                record.user_id,
                record.challenge_id,
                record.actor,
                record.summary,
                record.digest,
                record.outcome,
                record.detail,
                record.aws_request_id,
                record.prev_hash,
            ]),
        )
    };
    let mut input = tag.to_vec();
    input.extend_from_slice(canonical.to_string().as_bytes());
    hex::encode(hmac::sign(&key.0, &input).as_ref())
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A record's hash does not match its contents.
    #[error("audit record {0} was altered: its hash does not match its contents")]
    Altered(i64),
    /// A record does not point at the hash of the one before.
    #[error("audit record {0} does not follow record {1}: the chain was cut or reordered")]
    Unlinked(i64, i64),
    /// A sequence number is missing.
    #[error("audit record {0} is missing")]
    Missing(i64),
}

impl Broken {
    /// The first record that is not as it was written.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Altered(seq) | Self::Unlinked(seq, _) | Self::Missing(seq) => *seq,
        }
    }
}

/// Checks a chain record by record, so a long log can be read in pages.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    key: ChainKey,
    prev_hash: String,
    next_seq: i64,
}

impl ChainCheck {
    /// A check from the first record on.
    pub fn new(key: ChainKey) -> Self {
        Self {
            key,
            prev_hash: GENESIS.to_owned(),
            next_seq: 1,
        }
    }

    /// The hash of the last record checked (the head, once all are).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }

    /// Checks the next record.
    pub fn feed(&mut self, record: &Record) -> Result<(), Broken> {
        if record.seq != self.next_seq {
            return Err(Broken::Missing(self.next_seq));
        }
        if record.prev_hash != self.prev_hash {
            return Err(Broken::Unlinked(record.seq, record.seq - 1));
        }
        if expected_hash(record, &self.key) != record.hash {
            return Err(Broken::Altered(record.seq));
        }
        self.prev_hash.clone_from(&record.hash);
        self.next_seq += 1;
        Ok(())
    }

    /// How many records were checked.
    pub fn checked(&self) -> i64 {
        self.next_seq - 1
    }
}

/// Checks a whole chain, in order; the first break wins.
pub fn verify(records: &[Record], key: &ChainKey) -> Result<(), Broken> {
    let mut check = ChainCheck::new(key.clone());
    records.iter().try_for_each(|r| check.feed(r))
}

/// Audit writes that failed (and so stopped the decision they were to record), since start.
static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many audit writes failed since this process started (a counter for metrics).
pub fn write_failures() -> u64 {
    WRITE_FAILURES.load(Ordering::Relaxed)
}

/// Counts a recorded decision: every record by outcome, and those about a challenge again
/// as the challenge's story.
fn counted(entry: &Entry) {
    let outcome = entry.outcome.as_str();
    metrics::counter!(crate::metrics::AUDIT_RECORDS, "outcome" => outcome).increment(1);
    if entry.challenge_id.is_some() {
        metrics::counter!(crate::metrics::CHALLENGES, "outcome" => outcome).increment(1);
    }
}

/// Appends to the chain, and to the checkpoint sink after each append.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    key: ChainKey,
    checkpoints: Option<Arc<checkpoint::Checkpoints>>,
}

/// The audit write failed, so the decision it was to record was not taken.
#[derive(Debug, thiserror::Error)]
#[error("the audit log could not record the decision: {0}")]
pub struct Unrecorded(#[from] pub StoreError);

impl AuditLog {
    /// The log in `store`, chained under `key`.
    pub fn new(store: Arc<dyn Store>, key: ChainKey) -> Self {
        Self {
            store,
            key,
            checkpoints: None,
        }
    }

    /// Also writes a signed checkpoint of the head after every append.
    pub fn with_checkpoints(mut self, checkpoints: Arc<checkpoint::Checkpoints>) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// The chain key.
    pub fn key(&self) -> &ChainKey {
        &self.key
    }

    /// Checks `records` (a whole chain, in order) under this log's key.
    pub fn verify(&self, records: &[Record]) -> Result<(), Broken> {
        verify(records, &self.key)
    }

    /// Appends `entry` on its own.
    pub async fn append(&self, entry: &Entry) -> Result<Record, Unrecorded> {
        let result = self.store.append_audit(&entry.draft(), &self.key).await;
        self.after(entry, result)
    }

    /// Appends `entry` within `tx` and commits it: the state changes made in `tx` and their
    /// record are written together, or neither is.
    pub async fn commit_with(
        &self,
        mut tx: Box<dyn StoreTx>,
        entry: &Entry,
    ) -> Result<Record, Unrecorded> {
        let result = async {
            let record = tx.append_audit(&entry.draft(), &self.key).await?;
            tx.commit().await?;
            Ok(record)
        }
        .await;
        self.after(entry, result)
    }

    /// Appends several entries within `tx` and commits it.
    pub async fn commit_all(
        &self,
        mut tx: Box<dyn StoreTx>,
        entries: &[Entry],
    ) -> Result<Vec<Record>, Unrecorded> {
        let result = async {
            let mut records = Vec::new();
            for entry in entries {
                records.push(tx.append_audit(&entry.draft(), &self.key).await?);
            }
            tx.commit().await?;
            Ok(records)
        }
        .await;
        match result {
            Ok(records) => {
                entries.iter().for_each(counted);
                if let Some(last) = records.last() {
                    self.checkpoint(last);
                }
                Ok(records)
            }
            Err(error) => {
                for entry in entries {
                    self.failed(entry, &error);
                }
                Err(Unrecorded(error))
            }
        }
    }

    fn after(
        &self,
        entry: &Entry,
        result: Result<Record, StoreError>,
    ) -> Result<Record, Unrecorded> {
        match result {
            Ok(record) => {
                counted(entry);
                self.checkpoint(&record);
                Ok(record)
            }
            Err(error) => {
                self.failed(entry, &error);
                Err(Unrecorded(error))
            }
        }
    }

    fn failed(&self, entry: &Entry, error: &StoreError) {
        WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES).increment(1);
        tracing::error!(
            %error,
            outcome = %entry.outcome,
            challenge = entry.challenge_id.as_deref().unwrap_or("-"),
            audit_write_failures = write_failures(),
            "could not append to the audit log; the decision was not taken"
        );
    }

    fn checkpoint(&self, record: &Record) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.write(record.seq, &record.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChainKey {
        ChainKey::from_bytes(&[9u8; 32])
    }

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let draft = AuditDraft {
                    at: 1000 + seq,
                    tenant_id: Some("t".into()),
                    user_id: Some("u".into()),
                    challenge_id: Some("c_1".into()),
                    actor: Some("alexa-session:s1".into()),
                    summary: format!("Stop instance web-{seq}"),
                    digest: "d".into(),
                    outcome: "held".into(),
                    ..AuditDraft::default()
                };
                let r = key().seal(&draft, seq, &prev);
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5), &key()), Ok(()));
        assert_eq!(verify(&[], &key()), Ok(()));
    }

    #[test]
    fn every_kind_of_edit_is_found() {
        let mut edited = chain(5);
        edited[2].outcome = "executed".into();
        assert_eq!(verify(&edited, &key()), Err(Broken::Altered(3)));

        let mut rehashed = chain(5);
        rehashed[2].summary = "Start instance web-3".into();
        rehashed[2].hash = expected_hash(&rehashed[2], &key());
        assert_eq!(
            verify(&rehashed, &key()),
            Err(Broken::Unlinked(4, 3)),
            "recomputing one hash breaks the next link"
        );

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify(&deleted, &key()), Err(Broken::Missing(2)));

        let mut truncated_front = chain(5);
        truncated_front.remove(0);
        assert_eq!(verify(&truncated_front, &key()), Err(Broken::Missing(1)));
    }

    #[test]
    fn a_chain_rewritten_without_the_key_is_found() {
        // Someone with database access edits record 2 and recomputes every hash after it,
        // but with a key of their own.
        let forger = ChainKey::from_bytes(&[1u8; 32]);
        let mut forged = chain(4);
        forged[1].outcome = "denied".into();
        for i in 1..forged.len() {
            forged[i].prev_hash = forged[i - 1].hash.clone();
            forged[i].hash = expected_hash(&forged[i], &forger);
        }
        assert_eq!(verify(&forged, &key()), Err(Broken::Altered(2)));
        assert_eq!(format!("{:?}", key()), "ChainKey(<redacted>)");
    }

    #[test]
    fn the_challenge_and_the_actor_are_covered_and_formats_cannot_be_swapped() {
        let mut moved = chain(3);
        moved[1].challenge_id = Some("c_2".into());
        assert_eq!(verify(&moved, &key()), Err(Broken::Altered(2)));
        let mut other_actor = chain(3);
        other_actor[1].actor = Some("device:d_1".into());
        assert_eq!(verify(&other_actor, &key()), Err(Broken::Altered(2)));
        // Claiming the older format (whose hash ignores challenge and actor) does not help.
        let mut downgraded = chain(3);
        downgraded[1].format = 2;
        downgraded[1].actor = Some("operator".into());
        assert_eq!(verify(&downgraded, &key()), Err(Broken::Altered(2)));
    }
}
