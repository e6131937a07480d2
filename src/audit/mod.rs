//! The audit trail: every decision about an operation (held, confirmed, wrong code, reuse,
//! denied, cancelled, expired, executed, failed, refused by the tag guard) appended to a
//! hash-chained log in the store. Each record's hash is an HMAC-SHA256, under a chain key
//! sealed like every other secret, over a canonical encoding of its fields and the previous
//! record's hash. Editing, deleting or reordering a record breaks the chain from there on,
//! and `voxgate audit verify` finds the first break; rewriting the chain to hide an edit
//! needs the key, which database access alone does not give. (Dropping the newest records
//! is only seen against a head noted elsewhere: `audit verify` prints it.)
//!
//! Records hold summaries, digests and outcomes, never codes, keys or credentials.
//! Knows the store, nothing of HTTP or Alexa.

use std::fmt;
use std::sync::Arc;

use ring::hmac;
use serde::Serialize;

use crate::cloud::ServiceKeyError;
use crate::cloud::seal::Sealer;
use crate::store::{Store, StoreError};

/// The key the chain's HMACs are made with. `Debug` redacts it.
#[derive(Clone)]
pub struct ChainKey(hmac::Key);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

const CHAIN_KEY_NAME: &str = "audit-chain-key";

impl ChainKey {
    /// The deployment's chain key (made and sealed on first use).
    pub async fn load(store: &dyn Store, sealer: &Sealer) -> Result<Self, ServiceKeyError> {
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
        Self::load(store, sealer).await.map(Some)
    }

    /// A key from raw bytes.
    pub fn from_bytes(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }
}

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// A code was spoken again after it had been used.
    Reuse,
    /// Denied from the companion app.
    Denied,
    /// Cancelled by voice.
    Cancelled,
    /// Replaced by a newer operation, with the person's consent.
    Replaced,
    /// Expired before a right code was spoken.
    Expired,
    /// Too many wrong codes: the challenge was cancelled or the user is locked out.
    LockedOut,
    /// The operation ran.
    Executed,
    /// The operation was attempted and failed.
    Failed,
    /// Refused before holding: the target lacks the managed tag.
    RefusedByTagGuard,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::WrongCode => "wrong-code",
            Self::Reuse => "reuse",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Replaced => "replaced",
            Self::Expired => "expired",
            Self::LockedOut => "locked-out",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::RefusedByTagGuard => "refused-by-tag-guard",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Summary.
    pub summary: String,
    /// Digest.
    pub digest: String,
    /// Outcome name.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// AWS request id.
    pub aws_request_id: Option<String>,
    /// Hash of the record before.
    pub prev_hash: String,
    /// Hash of this record.
    pub hash: String,
}

impl Record {
    /// The hash this record must have: HMAC-SHA256 under the chain key over a domain tag
    /// and the canonical JSON array of every field but the hash, in a fixed order.
    pub fn expected_hash(&self, key: &ChainKey) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.at,
            self.tenant_id,
            self.user_id,
            self.summary,
            self.digest,
            self.outcome,
            self.detail,
            self.aws_request_id,
            self.prev_hash,
        ]);
        let mut input = b"voxgate-audit-v2\n".to_vec();
        input.extend_from_slice(canonical.to_string().as_bytes());
        hex::encode(hmac::sign(&key.0, &input).as_ref())
    }
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
        if record.expected_hash(&self.key) != record.hash {
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

/// Appends to the chain.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    key: ChainKey,
}

impl AuditLog {
    /// The log in `store`, chained under `key`.
    pub fn new(store: Arc<dyn Store>, key: ChainKey) -> Self {
        Self { store, key }
    }

    /// Checks `records` (a whole chain, in order) under this log's key.
    pub fn verify(&self, records: &[Record]) -> Result<(), Broken> {
        verify(records, &self.key)
    }

    /// Appends `entry`. Concurrent appenders (also on other replicas) race for the next
    /// sequence number; the loser reads the new head and tries again.
    pub async fn append(&self, entry: Entry) -> Result<Record, StoreError> {
        for _ in 0..100 {
            let (seq, prev_hash) = match self.store.audit_head().await? {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS.to_owned()),
            };
            let mut record = Record {
                seq,
                at: entry.at,
                tenant_id: entry.tenant_id.clone(),
                user_id: entry.user_id.clone(),
                summary: entry.summary.clone(),
                digest: entry.digest.clone(),
                outcome: entry.outcome.as_str().to_owned(),
                detail: entry.detail.clone(),
                aws_request_id: entry.aws_request_id.clone(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = record.expected_hash(&self.key);
            match self.store.insert_audit(&record).await {
                Ok(()) => return Ok(record),
                Err(StoreError::Duplicate(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Duplicate(
            "the next audit sequence number (after 100 tries)".into(),
        ))
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
                let mut r = Record {
                    seq,
                    at: 1000 + seq,
                    tenant_id: Some("t".into()),
                    user_id: Some("u".into()),
                    summary: format!("Stop instance web-{seq}"),
                    digest: "d".into(),
                    outcome: "held".into(),
                    detail: String::new(),
                    aws_request_id: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.expected_hash(&key());
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
        rehashed[2].hash = rehashed[2].expected_hash(&key());
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
            forged[i].hash = forged[i].expected_hash(&forger);
        }
        assert_eq!(verify(&forged, &key()), Err(Broken::Altered(2)));
        assert_eq!(format!("{:?}", key()), "ChainKey(<redacted>)");
    }
}
