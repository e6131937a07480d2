//! The signing certificate chain behind a `SignatureCertChainUrl`: where it comes from
//! (HTTPS fetch, or a pre-fetched file in `--alexa-cert-dir`), a bounded cache per URL, and
//! the checks Amazon requires of it, repeated on every use so that a cached chain that
//! expires stops being accepted the moment it does.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};

use super::cert_url::CertChainUrl;

/// The name Amazon's signing certificate must carry in its Subject Alternative Names.
pub const SIGNING_CERT_SAN: &str = "echo-api.amazon.com";

/// Largest chain file accepted, fetched or read.
const MAX_CHAIN_BYTES: usize = 64 * 1024;
/// Distinct chain URLs remembered at once. Amazon rotates its certificate rarely; a bound
/// keeps a flood of distinct (valid-looking) URLs from growing memory.
const CACHE_ENTRIES: usize = 16;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A URL whose fetch failed is not fetched again for this long: requests are only
/// verified after the fetch, so anyone can name a URL, and voxgate must not become a
/// way to hammer S3 or to keep the load lock busy.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(30);

/// Why a chain could not be had or was not trusted.
#[derive(Debug, thiserror::Error)]
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

/// A parsed chain: the signing certificate first, then its issuers.
#[derive(Debug)]
struct Chain {
    certs: Vec<CertificateDer<'static>>,
}

/// Fetches, caches and checks signing chains.
pub struct ChainStore {
    roots: TrustRoots,
    source: ChainSource,
    http: reqwest::Client,
    cache: Mutex<LruCache<CertChainUrl, Arc<Chain>>>,
    /// Recent failed fetches, by URL.
    failed: Mutex<LruCache<CertChainUrl, std::time::Instant>>,
    /// Serialises loads so that a burst of requests on a cold cache fetches once.
    load_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore")
            .field("roots", &self.roots.0.len())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
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
            roots,
            source,
            http,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            failed: Mutex::new(LruCache::new(
                NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            )),
            load_lock: tokio::sync::Mutex::new(()),
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
        let chain = self.trusted_chain(url, now).await?;
        let leaf = EndEntityCert::try_from(&chain.certs[0])
            .map_err(|e| ChainError::Untrusted(format!("{e:?}")))?;
        leaf.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, body, signature)
            .map_err(|_| SignatureCheckError::BadSignature)
    }

    /// The chain for `url`, checked at `now`: from the cache if there, else loaded.
    async fn trusted_chain(
        &self,
        url: &CertChainUrl,
        now: OffsetDateTime,
    ) -> Result<Arc<Chain>, ChainError> {
        if let Some(chain) = self.cached(url) {
            return match self.check(&chain, now) {
                Ok(()) => Ok(chain),
                Err(e) => {
                    // An expired cached chain is dropped so that a rotated one is loaded
                    // next time; the request in hand is refused either way.
                    self.forget(url);
                    Err(e)
                }
            };
        }
        let _single_flight = self.load_lock.lock().await;
        if let Some(chain) = self.cached(url) {
            self.check(&chain, now)?;
            return Ok(chain);
        }
        let pem = self.load(url).await?;
        let chain = Arc::new(parse_chain(&pem)?);
        self.check(&chain, now)?;
        self.lock_cache().put(url.clone(), Arc::clone(&chain));
        Ok(chain)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, LruCache<CertChainUrl, Arc<Chain>>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, url: &CertChainUrl) -> Option<Arc<Chain>> {
        self.lock_cache().get(url).cloned()
    }

    fn forget(&self, url: &CertChainUrl) {
        self.lock_cache().pop(url);
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

    async fn load(&self, url: &CertChainUrl) -> Result<Vec<u8>, ChainError> {
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
            ChainSource::Fetch => {
                let recently_failed = self
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(url)
                    .is_some_and(|at| at.elapsed() < FAILED_FETCH_BACKOFF);
                if recently_failed {
                    return Err(ChainError::Fetch("failed recently; not retried yet".into()));
                }
                let result = self.fetch(url).await;
                if result.is_err() {
                    self.failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .put(url.clone(), std::time::Instant::now());
                }
                result
            }
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
    Ok(Chain { certs })
}
