//! The signing certificate chain behind a `SignatureCertChainUrl`: where it comes from
//! (HTTPS fetch, or a pre-fetched file in `--alexa-cert-dir`), bounded caches per URL, and
//! the checks Amazon requires of it, repeated on every use so that a cached chain that
//! expires stops being accepted the moment it does.
//!
//! Strangers choose the URL (a request is verified only after its chain is loaded), so
//! loading is built not to be driven by them: one load per URL at a time with a bounded
//! wait, a cap on loads in flight, a back-off after a failure of any kind, and a cache that
//! keeps only chains a good signature was made with.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use lru::LruCache;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use webpki::{EndEntityCert, KeyUsage};

use super::cert_url::CertChainUrl;

/// The name Amazon's signing certificate must carry in its Subject Alternative Names.
pub const SIGNING_CERT_SAN: &str = "echo-api.amazon.com";

/// Largest chain file accepted, fetched or read.
const MAX_CHAIN_BYTES: usize = 64 * 1024;
/// Chains that verified a signature, remembered at once. Amazon rotates its certificate
/// rarely; only a chain a real signature was made with gets a place here, so nobody can
/// push a genuine chain out by naming others.
const VERIFIED_ENTRIES: usize = 16;
/// Chains loaded and checked but not (yet) used for a good signature: anyone can make
/// voxgate load Amazon's other real chains, so they wait here, apart.
const CANDIDATE_ENTRIES: usize = 32;
/// Loads running at once; more are refused at once rather than queued.
const MAX_LOADS: usize = 4;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a load (its own or another's) of its chain.
const LOAD_WAIT: Duration = Duration::from_secs(6);
/// A URL whose load failed (fetch, parse or check) is not loaded again for this long,
/// doubling with each further failure up to [`MAX_BACKOFF`]: requests are only verified
/// after the load, so anyone can name a URL, and voxgate must not become a way to hammer
/// S3 or to keep loads busy.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// URLs whose failures are remembered.
const FAILURE_ENTRIES: usize = 1024;

/// Why a chain could not be had or was not trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChainError {
    /// Fetching the chain failed (network, HTTP status, size).
    #[error("could not fetch the certificate chain: {0}")]
    Fetch(String),
    /// No pre-fetched chain for this URL in `--alexa-cert-dir`.
    #[error("no pre-fetched certificate chain at {0}")]
    NotPrefetched(PathBuf),
    /// The chain is not PEM, or holds no certificate.
    #[error("certificate chain is not a PEM list of certificates")]
    Unreadable,
    /// The signing certificate is outside its validity dates (or an issuer is).
    #[error("signing certificate chain is expired or not yet valid")]
    Expired,
    /// The signing certificate does not name `echo-api.amazon.com`.
    #[error("signing certificate does not carry the SAN echo-api.amazon.com")]
    WrongName,
    /// The chain does not lead to a trusted root.
    #[error("signing certificate does not chain to a trusted root: {0}")]
    Untrusted(String),
    /// Loading this URL failed recently; it is not tried again yet.
    #[error("loading this certificate chain failed recently; not tried again yet")]
    RecentlyFailed,
    /// Too many chains are being loaded at once.
    #[error("too many certificate chains are being loaded at once")]
    Busy,
    /// The load did not finish in time.
    #[error("the certificate chain did not load in time")]
    LoadTimeout,
}

/// Where chains come from when not cached.
#[derive(Debug, Clone)]
pub enum ChainSource {
    /// Fetch over HTTPS (rustls) from the URL itself.
    Fetch,
    /// Read `DIR/<sha256 of the normalised URL>.pem`; never touch the network.
    Directory(PathBuf),
}

/// Trusted roots for the signing chain.
#[derive(Debug)]
pub struct TrustRoots(Vec<TrustAnchor<'static>>);

impl TrustRoots {
    /// How many roots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The Mozilla root program, as shipped by `webpki-roots`.
    pub fn builtin() -> Self {
        Self(webpki_roots::TLS_SERVER_ROOTS.to_vec())
    }

    /// Roots read from a PEM bundle; replaces the built-in set.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut anchors = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| format!("a certificate in the bundle cannot be a root ({e:?})"))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err("the bundle holds no certificate".into());
        }
        Ok(Self(anchors))
    }

    /// Reads a PEM bundle from a file.
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
        Self::from_pem(&pem)
    }
}

/// A parsed chain: the signing certificate first, then its issuers; when all of them are
/// valid; and the signing certificate's key, parsed once.
struct Chain {
    certs: Vec<CertificateDer<'static>>,
    /// Unix seconds from which every certificate of the chain is valid.
    valid_from: i64,
    /// Unix seconds until which every certificate of the chain is valid.
    valid_until: i64,
    /// The signing certificate's public key (RSA), ready to verify signatures with.
    key: ParsedPublicKey,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("certs", &self.certs.len())
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Checks again, at `now`, what can change about a chain that passed [`Inner::check`]:
    /// time. A chain's path, names and uses are fixed; each certificate's dates are not
    /// checked once but on every use, so the moment one expires the chain stops working.
    fn still_valid(&self, now: OffsetDateTime) -> Result<(), ChainError> {
        let now = now.unix_timestamp();
        if now < self.valid_from || now > self.valid_until {
            return Err(ChainError::Expired);
        }
        Ok(())
    }
}

type Load = Shared<BoxFuture<'static, Result<Arc<Chain>, ChainError>>>;

/// A failed load, and when the URL may be tried again.
#[derive(Debug, Clone, Copy)]
struct Failure {
    retry_at: Instant,
    backoff: Duration,
}

/// What the store shares with its load tasks.
struct Inner {
    roots: TrustRoots,
    source: ChainSource,
    http: reqwest::Client,
    verified: Mutex<LruCache<CertChainUrl, Arc<Chain>>>,
    candidates: Mutex<LruCache<CertChainUrl, Arc<Chain>>>,
    failed: Mutex<LruCache<CertChainUrl, Failure>>,
    loading: Mutex<HashMap<CertChainUrl, Load>>,
    loads: Arc<Semaphore>,
}

/// Fetches, caches and checks signing chains. A URL is loaded once however many requests
/// name it at the same time (single flight), each waiting a bounded time; loads of
/// different URLs never wait for one another.
pub struct ChainStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore")
            .field("roots", &self.inner.roots.0.len())
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lru<K: std::hash::Hash + Eq, V>(entries: usize) -> Mutex<LruCache<K, V>> {
    Mutex::new(LruCache::new(
        NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN),
    ))
}

impl ChainStore {
    /// A store with the given roots and source.
    pub fn new(roots: TrustRoots, source: ChainSource) -> Result<Self, ChainError> {
        let http = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| ChainError::Fetch(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                roots,
                source,
                http,
                verified: lru(VERIFIED_ENTRIES),
                candidates: lru(CANDIDATE_ENTRIES),
                failed: lru(FAILURE_ENTRIES),
                loading: Mutex::new(HashMap::new()),
                loads: Arc::new(Semaphore::new(MAX_LOADS)),
            }),
        })
    }

    /// Checks `signature` (RSA PKCS#1 v1.5, SHA-256) over `body` with the signing
    /// certificate behind `url`, after checking that certificate at time `now`.
    pub async fn verify_signature(
        &self,
        url: &CertChainUrl,
        now: OffsetDateTime,
        body: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureCheckError> {
        let inner = &self.inner;
        // A chain that already verified a signature: checked again (its dates may have
        // passed), then used.
        let cached = lock(&inner.verified).get(url).cloned();
        if let Some(chain) = cached {
            if let Err(e) = chain.still_valid(now) {
                // An expired cached chain is dropped so that a rotated one is loaded next
                // time; the request in hand is refused either way.
                lock(&inner.verified).pop(url);
                return Err(e.into());
            }
            return verify_with(&chain, body, signature);
        }
        let candidate = lock(&inner.candidates).get(url).cloned();
        let chain = match candidate {
            Some(chain) => {
                if let Err(e) = chain.still_valid(now) {
                    lock(&inner.candidates).pop(url);
                    return Err(e.into());
                }
                chain
            }
            None => self.load(url, now).await?,
        };
        verify_with(&chain, body, signature)?;
        // A good signature was made with it: it is Amazon's chain in use.
        lock(&inner.candidates).pop(url);
        lock(&inner.verified).put(url.clone(), chain);
        Ok(())
    }

    /// The chain at `url`, loaded once for every request that waits for it.
    async fn load(
        &self,
        url: &CertChainUrl,
        now: OffsetDateTime,
    ) -> Result<Arc<Chain>, ChainError> {
        let inner = &self.inner;
        let load = {
            let mut loading = lock(&inner.loading);
            match loading.get(url) {
                Some(load) => load.clone(),
                None => {
                    let failed = lock(&inner.failed).get(url).copied();
                    if failed.is_some_and(|f| f.retry_at > Instant::now()) {
                        return Err(ChainError::RecentlyFailed);
                    }
                    let permit = Arc::clone(&inner.loads)
                        .try_acquire_owned()
                        .map_err(|_| ChainError::Busy)?;
                    let task = tokio::spawn({
                        let inner = Arc::clone(inner);
                        let url = url.clone();
                        async move {
                            let result = inner.load_and_check(&url, now).await;
                            inner.loaded(&url, &result);
                            drop(permit);
                            result
                        }
                    });
                    let load: Load = task
                        .map(|joined| joined.unwrap_or(Err(ChainError::LoadTimeout)))
                        .boxed()
                        .shared();
                    loading.insert(url.clone(), load.clone());
                    load
                }
            }
        };
        tokio::time::timeout(LOAD_WAIT, load)
            .await
            .unwrap_or(Err(ChainError::LoadTimeout))
    }
}

/// `Signature-256`: RSA PKCS#1 v1.5 over SHA-256 of the exact body, with the signing
/// certificate's key (2048 to 8192 bits).
fn verify_with(chain: &Chain, body: &[u8], signature: &[u8]) -> Result<(), SignatureCheckError> {
    chain
        .key
        .verify_sig(body, signature)
        .map_err(|_| SignatureCheckError::BadSignature)
}

impl Inner {
    /// Reads or fetches, parses and checks the chain (bounded in time).
    async fn load_and_check(
        &self,
        url: &CertChainUrl,
        now: OffsetDateTime,
    ) -> Result<Arc<Chain>, ChainError> {
        let pem = tokio::time::timeout(FETCH_TIMEOUT, self.bytes(url))
            .await
            .unwrap_or(Err(ChainError::LoadTimeout))?;
        let chain = Arc::new(parse_chain(&pem)?);
        self.check(&chain, now)?;
        Ok(chain)
    }

    /// Files the result of a load: a checked chain waits among the candidates; a failure
    /// of any kind backs off.
    fn loaded(&self, url: &CertChainUrl, result: &Result<Arc<Chain>, ChainError>) {
        match result {
            Ok(chain) => {
                lock(&self.candidates).put(url.clone(), Arc::clone(chain));
                lock(&self.failed).pop(url);
            }
            Err(_) => {
                let mut failed = lock(&self.failed);
                let backoff = failed
                    .get(url)
                    .map_or(FIRST_BACKOFF, |f| (f.backoff * 2).min(MAX_BACKOFF));
                failed.put(
                    url.clone(),
                    Failure {
                        retry_at: Instant::now() + backoff,
                        backoff,
                    },
                );
            }
        }
        lock(&self.loading).remove(url);
    }

    /// Amazon's checks on the chain: the signing certificate within its dates (and so
    /// every issuer), `echo-api.amazon.com` among its SANs, and a path to a trusted root.
    fn check(&self, chain: &Chain, now: OffsetDateTime) -> Result<(), ChainError> {
        let leaf = EndEntityCert::try_from(&chain.certs[0])
            .map_err(|e| ChainError::Untrusted(format!("{e:?}")))?;
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots.0,
            &chain.certs[1..],
            time,
            // Amazon's signing certificate is a TLS server certificate; one issued only for
            // code signing, e-mail or client auth is not it (RFC 5280 §4.2.1.12).
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                ChainError::Expired
            }
            other => ChainError::Untrusted(format!("{other:?}")),
        })?;
        let name = ServerName::try_from(SIGNING_CERT_SAN).map_err(|_| ChainError::WrongName)?;
        leaf.verify_is_valid_for_subject_name(&name)
            .map_err(|_| ChainError::WrongName)
    }

    async fn bytes(&self, url: &CertChainUrl) -> Result<Vec<u8>, ChainError> {
        match &self.source {
            ChainSource::Directory(dir) => {
                let path = dir.join(url.cache_file_name());
                let pem = tokio::fs::read(&path)
                    .await
                    .map_err(|_| ChainError::NotPrefetched(path))?;
                if pem.len() > MAX_CHAIN_BYTES {
                    return Err(ChainError::Unreadable);
                }
                Ok(pem)
            }
            ChainSource::Fetch => self.fetch(url).await,
        }
    }

    async fn fetch(&self, url: &CertChainUrl) -> Result<Vec<u8>, ChainError> {
        let mut response = self
            .http
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| ChainError::Fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ChainError::Fetch(format!("HTTP {}", response.status())));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ChainError::Fetch(e.to_string()))?
        {
            if pem.len() + chunk.len() > MAX_CHAIN_BYTES {
                return Err(ChainError::Fetch("chain is larger than 64 KiB".into()));
            }
            pem.extend_from_slice(&chunk);
        }
        Ok(pem)
    }
}

/// Why a signature check failed: the chain, or the signature itself.
#[derive(Debug, thiserror::Error)]
pub enum SignatureCheckError {
    /// The chain could not be had or is not trusted.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The signature does not match the body under the signing certificate's key.
    #[error("Signature-256 does not match the request body")]
    BadSignature,
}

fn parse_chain(pem: &[u8]) -> Result<Chain, ChainError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ChainError::Unreadable)?;
    if certs.is_empty() {
        return Err(ChainError::Unreadable);
    }
    let mut valid_from = i64::MIN;
    let mut valid_until = i64::MAX;
    let mut key = None;
    for (i, der) in certs.iter().enumerate() {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| ChainError::Unreadable)?;
        let validity = cert.validity();
        valid_from = valid_from.max(validity.not_before.timestamp());
        valid_until = valid_until.min(validity.not_after.timestamp());
        if i == 0 {
            key = Some(
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, cert.public_key().raw)
                    .map_err(|_| ChainError::Untrusted("the signing key is not RSA".into()))?,
            );
        }
    }
    Ok(Chain {
        certs,
        valid_from,
        valid_until,
        key: key.ok_or(ChainError::Unreadable)?,
    })
}
