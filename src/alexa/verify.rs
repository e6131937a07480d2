//! Verifying that a request really comes from Alexa, on the raw body bytes, before any
//! parsing: the certificate URL, the chain, `Signature-256`, then the timestamp, the skill
//! id and the request id (replay). Follows "Verify that the request was sent by Alexa" in
//! *Host a Custom Skill as a Web Service*, stricter where the official SDKs are lax (SHA-1
//! alone is refused, the chain is re-checked on every use, replays are refused).
//!
//! A refused request changes no state: the replay guard records a request id only after
//! every other check has passed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use base64::Engine as _;
use time::{Duration, OffsetDateTime};

use super::cert_url::{CertChainUrl, CertUrlError};
use super::chain::{ChainError, ChainStore, SignatureCheckError};
use super::envelope::{RequestEnvelope, RequestKind};
use crate::clock::Clock;

/// How far a request's timestamp may be from the server clock, either way.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::seconds(150);
/// The same for `AlexaSkillEvent.*`, which Alexa may deliver up to an hour late.
pub const SKILL_EVENT_TIMESTAMP_TOLERANCE: Duration = Duration::seconds(3600);
/// Request ids remembered at most; far above what a skill sees within an hour.
const REPLAY_CAPACITY: usize = 100_000;

/// Why a request was refused. Each variant is one rule; [`VerifyError::reason`] is the
/// short code logged and returned with the 400.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No `SignatureCertChainUrl` header.
    #[error("SignatureCertChainUrl header is missing")]
    MissingCertUrl,
    /// The certificate URL breaks a format rule.
    #[error(transparent)]
    CertUrl(#[from] CertUrlError),
    /// No `Signature-256` header, and no `Signature` either.
    #[error("Signature-256 header is missing")]
    MissingSignature,
    /// Only the SHA-1 `Signature` header: refused, SHA-1 is not accepted.
    #[error("only the SHA-1 Signature header was sent; Signature-256 is required")]
    Sha1Only,
    /// `Signature-256` is not base64.
    #[error("Signature-256 is not valid base64")]
    SignatureEncoding,
    /// The chain could not be had or is not trusted.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The signature does not match the body.
    #[error("Signature-256 does not match the request body")]
    BadSignature,
    /// The body is not a request envelope.
    #[error("request body is not a valid Alexa request: {0}")]
    Malformed(String),
    /// The timestamp is too old.
    #[error("request timestamp is too old")]
    StaleTimestamp,
    /// The timestamp is too far in the future.
    #[error("request timestamp is in the future")]
    FutureTimestamp,
    /// The request is for a skill id that is not configured.
    #[error("request is for another skill")]
    WrongSkill,
    /// The request id was seen before within its timestamp window.
    #[error("request id was already seen (replay)")]
    Replayed,
    /// The replay guard is full and cannot vouch for this request.
    #[error("too many recent requests to check for replays")]
    ReplayGuardFull,
    /// Verification is off and the request came through a proxy: it is not local.
    #[error(
        "verification is off (--insecure-skip-verification) and the request came through a \
         proxy, so it is not from this machine"
    )]
    ProxiedWhileUnverified,
    /// The shared replay ledger could not be consulted.
    #[error("the shared replay ledger failed: {0}")]
    ReplayLedger(String),
}

impl VerifyError {
    /// A short, stable code for logs and the 400 body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingCertUrl => "missing-cert-url",
            Self::CertUrl(CertUrlError::Malformed) => "cert-url-malformed",
            Self::CertUrl(CertUrlError::Scheme) => "cert-url-scheme",
            Self::CertUrl(CertUrlError::Host) => "cert-url-host",
            Self::CertUrl(CertUrlError::Port) => "cert-url-port",
            Self::CertUrl(CertUrlError::Path) => "cert-url-path",
            Self::CertUrl(CertUrlError::Credentials) => "cert-url-credentials",
            Self::CertUrl(CertUrlError::QueryOrFragment) => "cert-url-query",
            Self::CertUrl(CertUrlError::PathCharacters) => "cert-url-path-characters",
            Self::MissingSignature => "missing-signature",
            Self::Sha1Only => "sha1-signature-only",
            Self::SignatureEncoding => "signature-encoding",
            Self::Chain(ChainError::Fetch(_)) => "cert-fetch-failed",
            Self::Chain(ChainError::NotPrefetched(_)) => "cert-not-prefetched",
            Self::Chain(ChainError::Unreadable) => "cert-unreadable",
            Self::Chain(ChainError::Expired) => "cert-expired",
            Self::Chain(ChainError::WrongName) => "cert-wrong-san",
            Self::Chain(ChainError::Untrusted(_)) => "cert-untrusted",
            Self::Chain(ChainError::RecentlyFailed) => "cert-recently-failed",
            Self::Chain(ChainError::Busy) => "cert-load-busy",
            Self::Chain(ChainError::LoadTimeout) => "cert-load-timeout",
            Self::BadSignature => "bad-signature",
            Self::Malformed(_) => "malformed-request",
            Self::StaleTimestamp => "stale-timestamp",
            Self::FutureTimestamp => "future-timestamp",
            Self::WrongSkill => "wrong-skill-id",
            Self::Replayed => "replayed-request",
            Self::ReplayGuardFull => "replay-guard-full",
            Self::ReplayLedger(_) => "replay-check-failed",
            Self::ProxiedWhileUnverified => "proxied-request-unverified",
        }
    }
}

impl From<SignatureCheckError> for VerifyError {
    fn from(e: SignatureCheckError) -> Self {
        match e {
            SignatureCheckError::Chain(chain) => Self::Chain(chain),
            SignatureCheckError::BadSignature => Self::BadSignature,
        }
    }
}

/// The signature headers of a request, as sent (header names are case-insensitive in
/// HTTP; the caller looks them up that way).
#[derive(Debug, Default, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    /// `SignatureCertChainUrl`.
    pub cert_chain_url: Option<&'a str>,
    /// `Signature-256`.
    pub signature_256: Option<&'a str>,
    /// `Signature` (SHA-1): only noted, never trusted.
    pub signature_sha1: Option<&'a str>,
    /// Whether the request carries proxy headers (`Forwarded`, `X-Forwarded-For`, …).
    pub proxied: bool,
}

/// A record of request ids shared by every replica (the store implements it). `alexa`
/// knows only this trait, not the store.
#[async_trait]
pub trait ReplayLedger: Send + Sync {
    /// Records `request_id` until `forget_after`; false if it was already recorded. Ids
    /// whose own window ended before `forget_before` may be forgotten on the way: that is
    /// the start of this request's window, measured by its own (Alexa's) timestamp, so no
    /// replica's clock, fast or slow, decides what the others may forget.
    async fn first_sighting(
        &self,
        request_id: &str,
        forget_after: OffsetDateTime,
        forget_before: OffsetDateTime,
    ) -> Result<bool, String>;

    /// Makes sure what was recorded is written (at shutdown). Nothing by default.
    async fn flush(&self) {}
}

/// Whether requests are verified.
#[derive(Debug)]
pub enum Mode {
    /// Every rule applies.
    Enforce(Box<ChainStore>),
    /// For local tools that cannot sign: signature, chain, timestamp and replay checks are
    /// skipped; configured skill ids are still enforced. Only allowed on loopback.
    InsecureSkip,
}

/// Verifies requests; one per running service.
pub struct RequestVerifier {
    mode: Mode,
    skill_ids: Vec<String>,
    replay: ReplayGuard,
    ledger: Option<Arc<dyn ReplayLedger>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RequestVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestVerifier")
            .field("mode", &self.mode)
            .field("skill_ids", &self.skill_ids)
            .finish_non_exhaustive()
    }
}

impl RequestVerifier {
    /// A verifier accepting requests for `skill_ids`.
    pub fn new(mode: Mode, skill_ids: Vec<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            mode,
            skill_ids,
            replay: ReplayGuard::new(REPLAY_CAPACITY),
            ledger: None,
            clock,
        }
    }

    /// Also checks request ids against `ledger`, shared by every replica.
    pub fn with_ledger(mut self, ledger: Arc<dyn ReplayLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Writes what the ledger has recorded (at shutdown).
    pub async fn flush(&self) {
        if let Some(ledger) = &self.ledger {
            ledger.flush().await;
        }
    }

    /// Checks a request and, if it passes, returns it parsed.
    pub async fn verify(
        &self,
        headers: SignatureHeaders<'_>,
        body: &[u8],
    ) -> Result<RequestEnvelope, VerifyError> {
        let now = self.clock.now();
        let enforce = match &self.mode {
            Mode::Enforce(chains) => {
                verify_signature(chains, headers, body, now).await?;
                true
            }
            // A loopback listener behind a reverse proxy is not local: whoever reaches the
            // proxy could act as Alexa.
            Mode::InsecureSkip if headers.proxied => {
                return Err(VerifyError::ProxiedWhileUnverified);
            }
            Mode::InsecureSkip => false,
        };

        let envelope =
            RequestEnvelope::from_slice(body).map_err(|e| VerifyError::Malformed(e.to_string()))?;

        let tolerance = match envelope.request.kind {
            RequestKind::SkillEvent(_) => SKILL_EVENT_TIMESTAMP_TOLERANCE,
            _ => TIMESTAMP_TOLERANCE,
        };
        if enforce {
            let age = now - envelope.request.timestamp;
            if age > tolerance {
                return Err(VerifyError::StaleTimestamp);
            }
            if age < -tolerance {
                return Err(VerifyError::FutureTimestamp);
            }
        }

        if !self.skill_ids.is_empty() {
            let ids = envelope.application_ids();
            if ids.is_empty() || !ids.iter().all(|id| self.skill_ids.iter().any(|s| s == id)) {
                return Err(VerifyError::WrongSkill);
            }
        }

        if enforce {
            // Remembered for as long as the timestamp would still be accepted: after
            // that, the timestamp check alone refuses a replay.
            let forget_after = envelope.request.timestamp + tolerance;
            // The shared ledger answers for every replica and across restarts (and fails
            // closed when it cannot answer); without one, an in-memory guard answers for
            // this process.
            if self.ledger.is_none() {
                self.replay
                    .first_sighting(&envelope.request.request_id, forget_after, now)?;
            }
            if let Some(ledger) = &self.ledger {
                let forget_before = envelope.request.timestamp - tolerance;
                let first = ledger
                    .first_sighting(&envelope.request.request_id, forget_after, forget_before)
                    .await
                    .map_err(VerifyError::ReplayLedger)?;
                if !first {
                    return Err(VerifyError::Replayed);
                }
            }
        }
        Ok(envelope)
    }
}

async fn verify_signature(
    chains: &ChainStore,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let raw_url = headers.cert_chain_url.ok_or(VerifyError::MissingCertUrl)?;
    let url = CertChainUrl::parse(raw_url)?;
    let signature = match (headers.signature_256, headers.signature_sha1) {
        (Some(sig), _) => sig,
        (None, Some(_)) => return Err(VerifyError::Sha1Only),
        (None, None) => return Err(VerifyError::MissingSignature),
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::SignatureEncoding)?;
    chains
        .verify_signature(&url, now, body, &signature)
        .await
        .map_err(VerifyError::from)
}

/// Request ids seen recently, each with the time after which it may be forgotten.
struct ReplayGuard {
    seen: Mutex<HashMap<String, OffsetDateTime>>,
    capacity: usize,
}

impl ReplayGuard {
    fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records `id`; refuses it if it is already recorded and not yet forgettable.
    fn first_sighting(
        &self,
        id: &str,
        forget_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = seen.get(id)
            && *until >= now
        {
            return Err(VerifyError::Replayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                // Fail closed: a guard that cannot remember cannot vouch.
                return Err(VerifyError::ReplayGuardFull);
            }
        }
        seen.insert(id.to_owned(), forget_after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_guard_refuses_a_second_sighting_until_the_window_passes() {
        let guard = ReplayGuard::new(10);
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let until = t0 + Duration::seconds(150);
        assert!(guard.first_sighting("a", until, t0).is_ok());
        assert!(matches!(
            guard.first_sighting("a", until, t0 + Duration::seconds(10)),
            Err(VerifyError::Replayed)
        ));
        assert!(guard.first_sighting("b", until, t0).is_ok());
        // Past its window the id may be forgotten (the timestamp check refuses it then).
        assert!(
            guard
                .first_sighting("a", until, t0 + Duration::seconds(151))
                .is_ok()
        );
    }

    #[test]
    fn replay_guard_fails_closed_when_full() {
        let guard = ReplayGuard::new(2);
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let until = t0 + Duration::seconds(150);
        guard.first_sighting("a", until, t0).expect("first");
        guard.first_sighting("b", until, t0).expect("second");
        assert!(matches!(
            guard.first_sighting("c", until, t0),
            Err(VerifyError::ReplayGuardFull)
        ));
        // Once the old ones expire there is room again.
        assert!(
            guard
                .first_sighting(
                    "c",
                    until + Duration::seconds(500),
                    t0 + Duration::seconds(200)
                )
                .is_ok()
        );
    }
}
