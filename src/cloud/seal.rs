//! Sealing secrets at rest: envelope encryption with a KMS key (`GenerateDataKey` AES-256,
//! AES-256-GCM locally with ring), or, for development only, a local key file.
//!
//! Every sealed value is bound to its tenant and purpose twice: by the KMS encryption
//! context (`tenant`, `purpose`) that KMS checks on `Decrypt`, and by the same context as
//! AES-GCM associated data. A blob copied to another tenant or purpose does not open.
//!
//! Data keys are cached within bounds (age and uses, like the AWS Encryption SDK's caching
//! thresholds), and plaintext keys are zeroised when dropped.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use lru::LruCache;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// A data key may encrypt for at most this long before a new one is made.
pub const DATA_KEY_MAX_AGE: Duration = Duration::from_secs(300);
/// A data key may seal or open at most this many values before it is dropped.
pub const DATA_KEY_MAX_USES: u64 = 1_000;
/// Data keys kept for sealing (one per context in use).
const ENCRYPT_CACHE_ENTRIES: usize = 256;
/// Data keys kept for opening.
const DECRYPT_CACHE_ENTRIES: usize = 4096;
/// Expired keys are swept out of both caches at most this often (and dropped with their
/// key schedules), so a key nobody asks for again does not linger in memory.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

const MAGIC: &[u8; 4] = b"VXS1";
const KIND_KMS: u8 = 1;
const KIND_LOCAL: u8 = 2;

type DataKey = Zeroizing<[u8; 32]>;

/// What a sealed value is for; part of the encryption context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A linked account's role ARN.
    RoleArn,
    /// A linked account's ExternalId.
    ExternalId,
    /// A user's TOTP key.
    TotpKey,
    /// One of voxgate's own keys (audit chain, pairing codes), by name.
    ServiceKey,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::RoleArn => "role-arn",
            Self::ExternalId => "external-id",
            Self::TotpKey => "totp-key",
            Self::ServiceKey => "service-key",
        }
    }
}

/// The encryption context of one sealed value: the tenant, what the value is for, and the
/// record it belongs to (the linked account, or the user), so that a blob copied to another
/// tenant, purpose or record does not open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealContext {
    tenant: String,
    purpose: Purpose,
    subject: String,
}

impl SealContext {
    /// The context for `purpose` of `subject` (an account or user id) within `tenant`.
    pub fn new(tenant: &str, purpose: Purpose, subject: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            purpose,
            subject: subject.to_owned(),
        }
    }

    fn kms(&self) -> HashMap<String, String> {
        HashMap::from([
            ("tenant".to_owned(), self.tenant.clone()),
            ("purpose".to_owned(), self.purpose.as_str().to_owned()),
            ("subject".to_owned(), self.subject.clone()),
        ])
    }

    /// Canonical bytes for AES-GCM associated data.
    fn aad(&self) -> Vec<u8> {
        format!(
            "voxgate-seal-v1\0tenant={}\0purpose={}\0subject={}",
            self.tenant,
            self.purpose.as_str(),
            self.subject
        )
        .into_bytes()
    }
}

pub use crate::store::Sealed;

/// Why sealing or opening failed. Messages never carry key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// KMS refused or could not be reached.
    #[error("KMS: {0}")]
    Kms(String),
    /// The blob does not open with this context (other tenant or purpose) or was altered.
    #[error("sealed value does not open in this context (wrong tenant or purpose, or altered)")]
    WrongContext,
    /// Not a sealed value of a known format.
    #[error("sealed value is corrupt")]
    Corrupt,
    /// Sealed with KMS but no KMS key is configured, or the other way round.
    #[error("{0}")]
    WrongKeySource(&'static str),
    /// The local key file cannot be used.
    #[error("local key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The system random number generator failed.
    #[error("no randomness available")]
    Random,
}

/// Where data keys come from.
#[async_trait]
trait KeySource: Send + Sync {
    fn kind(&self) -> u8;
    async fn generate(&self, ctx: &SealContext) -> Result<(DataKey, Vec<u8>), SealError>;
    async fn unwrap(&self, wrapped: &[u8], ctx: &SealContext) -> Result<DataKey, SealError>;
}

struct Kms {
    client: aws_sdk_kms::Client,
    key_id: String,
}

fn kms_error<E>(e: aws_sdk_kms::error::SdkError<E>) -> SealError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        aws_sdk_kms::error::SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("error");
            let message = service.err().message().unwrap_or("");
            let status = service.raw().status().as_u16();
            SealError::Kms(
                format!("{code} (HTTP {status}) {message}")
                    .trim()
                    .to_owned(),
            )
        }
        aws_sdk_kms::error::SdkError::DispatchFailure(_) => SealError::Kms(
            "could not be reached (check AWS_ENDPOINT_URL, the network and the region)".into(),
        ),
        aws_sdk_kms::error::SdkError::TimeoutError(_) => {
            SealError::Kms("KMS did not answer in time".into())
        }
        aws_sdk_kms::error::SdkError::ConstructionFailure(_) => SealError::Kms(
            "the KMS request could not be made (no AWS region or credentials set?)".into(),
        ),
        _ => SealError::Kms(aws_sdk_kms::error::DisplayErrorContext(&e).to_string()),
    }
}

fn kms_counted(call: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(crate::metrics::KMS_CALLS, "call" => call, "result" => result).increment(1);
}

fn key_from(bytes: &[u8]) -> Result<DataKey, SealError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| SealError::Corrupt)?;
    Ok(Zeroizing::new(array))
}

#[async_trait]
impl KeySource for Kms {
    fn kind(&self) -> u8 {
        KIND_KMS
    }

    async fn generate(&self, ctx: &SealContext) -> Result<(DataKey, Vec<u8>), SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(ctx.kms()))
            .send()
            .await
            .map_err(kms_error);
        kms_counted("generate-data-key", out.is_ok());
        let out = out?;
        let plaintext = out.plaintext().ok_or(SealError::Corrupt)?;
        let wrapped = out.ciphertext_blob().ok_or(SealError::Corrupt)?;
        Ok((key_from(plaintext.as_ref())?, wrapped.as_ref().to_vec()))
    }

    async fn unwrap(&self, wrapped: &[u8], ctx: &SealContext) -> Result<DataKey, SealError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(ctx.kms()))
            .send()
            .await;
        kms_counted("decrypt", out.is_ok());
        let out = out.map_err(|e| match kms_error(e) {
            SealError::Kms(m) if m.starts_with("InvalidCiphertextException") => {
                SealError::WrongContext
            }
            other => other,
        })?;
        key_from(out.plaintext().ok_or(SealError::Corrupt)?.as_ref())
    }
}

/// A key in a local file, for development: data keys are wrapped with it, and the
/// context is bound as associated data.
struct LocalKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl LocalKey {
    fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let fail = |reason: String| SealError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let hex_key = match std::fs::read_to_string(path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = std::fs::metadata(path)
                        .map_err(|e| fail(e.to_string()))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(fail(format!(
                            "is readable by others (mode {:o}); run chmod 600 on it",
                            mode & 0o777
                        )));
                    }
                }
                Zeroizing::new(text.trim().to_owned())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                SystemRandom::new()
                    .fill(key.as_mut())
                    .map_err(|_| SealError::Random)?;
                let hex_key = Zeroizing::new(hex::encode(key.as_ref()));
                write_private_file(path, hex_key.as_bytes()).map_err(|e| fail(e.to_string()))?;
                hex_key
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let bytes = Zeroizing::new(
            hex::decode(hex_key.as_bytes())
                .map_err(|_| fail("is not 64 hexadecimal characters".into()))?,
        );
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| fail("is not 64 hexadecimal characters".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }
}

/// Creates `path` with mode 0600 (never overwriting).
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[async_trait]
impl KeySource for LocalKey {
    fn kind(&self) -> u8 {
        KIND_LOCAL
    }

    async fn generate(&self, ctx: &SealContext) -> Result<(DataKey, Vec<u8>), SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        self.rng.fill(key.as_mut()).map_err(|_| SealError::Random)?;
        let wrapped = aead_seal(&self.key, &self.rng, key.as_ref(), &ctx.aad())?;
        Ok((key, wrapped))
    }

    async fn unwrap(&self, wrapped: &[u8], ctx: &SealContext) -> Result<DataKey, SealError> {
        let plain = aead_open(&self.key, wrapped, &ctx.aad())?;
        key_from(&plain)
    }
}

/// `nonce || ciphertext || tag`.
fn aead_seal(
    key: &LessSafeKey,
    rng: &SystemRandom,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
    let mut buffer = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buffer,
    )
    .map_err(|_| SealError::Corrupt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buffer);
    Ok(out)
}

fn aead_open(
    key: &LessSafeKey,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < NONCE_LEN {
        return Err(SealError::Corrupt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Corrupt)?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
        .map_err(|_| SealError::WrongContext)?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

struct CachedKey {
    key: LessSafeKey,
    wrapped: Vec<u8>,
    created: Instant,
    uses: u64,
}

impl CachedKey {
    fn fresh(&self) -> bool {
        self.fresh_at(Instant::now())
    }

    fn fresh_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) < DATA_KEY_MAX_AGE
            && self.uses < DATA_KEY_MAX_USES
    }
}

fn aead_key(key: &DataKey) -> Result<LessSafeKey, SealError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| SealError::Corrupt)?,
    ))
}

/// Seals and opens secrets.
pub struct Sealer {
    source: Box<dyn KeySource>,
    rng: SystemRandom,
    encrypting: Mutex<LruCache<SealContext, CachedKey>>,
    decrypting: Mutex<LruCache<(Vec<u8>, SealContext), CachedKey>>,
    last_prune: Mutex<Instant>,
    kms_calls: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source.kind() {
            KIND_KMS => "kms",
            _ => "local-key",
        };
        f.debug_struct("Sealer")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    fn with_source(source: Box<dyn KeySource>) -> Self {
        Self {
            source,
            rng: SystemRandom::new(),
            encrypting: Mutex::new(LruCache::new(
                NonZeroUsize::new(ENCRYPT_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            decrypting: Mutex::new(LruCache::new(
                NonZeroUsize::new(DECRYPT_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            last_prune: Mutex::new(Instant::now()),
            kms_calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Envelope encryption under a KMS key.
    pub fn kms(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self::with_source(Box::new(Kms {
            client,
            key_id: key_id.into(),
        }))
    }

    /// A local key file (created 0600 if missing). For development only.
    pub fn local_key_file(path: &Path) -> Result<Self, SealError> {
        Ok(Self::with_source(Box::new(LocalKey::load_or_create(path)?)))
    }

    /// Whether this sealer uses KMS.
    pub fn uses_kms(&self) -> bool {
        self.source.kind() == KIND_KMS
    }

    /// How many times a data key was generated or unwrapped (KMS calls, with KMS).
    pub fn key_source_calls(&self) -> u64 {
        self.kms_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every cached key past its age or uses, as of `now`.
    fn prune(&self, now: Instant) {
        fn sweep<K: Clone + std::hash::Hash + Eq>(
            cache: &Mutex<LruCache<K, CachedKey>>,
            now: Instant,
        ) {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let stale: Vec<K> = cache
                .iter()
                .filter(|(_, entry)| !entry.fresh_at(now))
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                cache.pop(&key);
            }
        }
        sweep(&self.encrypting, now);
        sweep(&self.decrypting, now);
    }

    /// Prunes if the last sweep is long enough ago.
    fn maybe_prune(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(*last) < PRUNE_EVERY {
                return;
            }
            *last = now;
        }
        self.prune(now);
    }

    /// How many data keys are cached (for sealing, for opening).
    pub fn cached_keys(&self) -> (usize, usize) {
        (
            self.encrypting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
            self.decrypting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
        )
    }

    /// Seals `plaintext` for `ctx`.
    pub async fn seal(&self, plaintext: &[u8], ctx: &SealContext) -> Result<Sealed, SealError> {
        self.maybe_prune();
        let cached = {
            let mut cache = self.encrypting.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get_mut(ctx) {
                Some(entry) if entry.fresh() => {
                    entry.uses += 1;
                    Some(
                        aead_seal(&entry.key, &self.rng, plaintext, &ctx.aad())
                            .map(|body| (entry.wrapped.clone(), body)),
                    )
                }
                _ => None,
            }
        };
        let (wrapped, body) = match cached {
            Some(result) => result?,
            None => {
                self.kms_calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (key, wrapped) = self.source.generate(ctx).await?;
                let key = aead_key(&key)?;
                let body = aead_seal(&key, &self.rng, plaintext, &ctx.aad())?;
                self.encrypting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(
                        ctx.clone(),
                        CachedKey {
                            key,
                            wrapped: wrapped.clone(),
                            created: Instant::now(),
                            uses: 1,
                        },
                    );
                (wrapped, body)
            }
        };
        let wrapped_len = u16::try_from(wrapped.len()).map_err(|_| SealError::Corrupt)?;
        let mut out = Vec::with_capacity(7 + wrapped.len() + body.len());
        out.extend_from_slice(MAGIC);
        out.push(self.source.kind());
        out.extend_from_slice(&wrapped_len.to_be_bytes());
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&body);
        Ok(Sealed::from_bytes(out))
    }

    /// Opens a value sealed for `ctx`.
    pub async fn open(
        &self,
        sealed: &Sealed,
        ctx: &SealContext,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.maybe_prune();
        let bytes = sealed.as_bytes();
        if bytes.len() < 7 || &bytes[..4] != MAGIC {
            return Err(SealError::Corrupt);
        }
        let kind = bytes[4];
        if kind != self.source.kind() {
            return Err(SealError::WrongKeySource(if kind == KIND_KMS {
                "this value was sealed with KMS: set --kms-key-id (VOXGATE_KMS_KEY_ID)"
            } else {
                "this value was sealed with a local key file: unset --kms-key-id to open it"
            }));
        }
        let wrapped_len = usize::from(u16::from_be_bytes([bytes[5], bytes[6]]));
        let rest = &bytes[7..];
        if rest.len() < wrapped_len {
            return Err(SealError::Corrupt);
        }
        let (wrapped, body) = rest.split_at(wrapped_len);
        let cache_key = (wrapped.to_vec(), ctx.clone());
        {
            let mut cache = self.decrypting.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get_mut(&cache_key) {
                if entry.fresh() {
                    entry.uses += 1;
                    return aead_open(&entry.key, body, &ctx.aad());
                }
                cache.pop(&cache_key);
            }
        }
        self.kms_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = aead_key(&self.source.unwrap(wrapped, ctx).await?)?;
        let plain = aead_open(&key, body, &ctx.aad())?;
        self.decrypting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(
                cache_key,
                CachedKey {
                    key,
                    wrapped: wrapped.to_vec(),
                    created: Instant::now(),
                    uses: 1,
                },
            );
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, Sealer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sealer = Sealer::local_key_file(&dir.path().join("voxgate.key")).expect("key");
        (dir, sealer)
    }

    #[tokio::test]
    async fn round_trip_and_binding_to_tenant_and_purpose() {
        let (_dir, sealer) = local();
        let ctx = SealContext::new("t_a", Purpose::ExternalId, "a_1");
        let sealed = sealer
            .seal(b"secret-external-id", &ctx)
            .await
            .expect("seal");
        assert!(!sealed.as_bytes().windows(6).any(|w| w == b"secret"));
        let opened = sealer.open(&sealed, &ctx).await.expect("open");
        assert_eq!(opened.as_slice(), b"secret-external-id");

        for other in [
            SealContext::new("t_b", Purpose::ExternalId, "a_1"),
            SealContext::new("t_a", Purpose::RoleArn, "a_1"),
            SealContext::new("t_a", Purpose::ExternalId, "a_2"),
        ] {
            assert!(matches!(
                sealer.open(&sealed, &other).await,
                Err(SealError::WrongContext)
            ));
        }
    }

    #[tokio::test]
    async fn altered_blobs_do_not_open() {
        let (_dir, sealer) = local();
        let ctx = SealContext::new("t_a", Purpose::RoleArn, "a_1");
        let sealed = sealer
            .seal(b"arn:aws:iam::111111111111:role/x", &ctx)
            .await
            .expect("seal");
        let mut bytes = sealed.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(sealer.open(&Sealed::from_bytes(bytes), &ctx).await.is_err());
        assert!(matches!(
            sealer
                .open(&Sealed::from_bytes(b"junk".to_vec()), &ctx)
                .await,
            Err(SealError::Corrupt)
        ));
    }

    #[tokio::test]
    async fn data_keys_are_reused_only_within_the_use_bound() {
        let (_dir, sealer) = local();
        let ctx = SealContext::new("t_a", Purpose::TotpKey, "u_1");
        for _ in 0..DATA_KEY_MAX_USES {
            sealer.seal(b"x", &ctx).await.expect("seal");
        }
        assert_eq!(
            sealer.key_source_calls(),
            1,
            "one data key for the first 1,000 values"
        );
        sealer.seal(b"x", &ctx).await.expect("seal");
        assert_eq!(
            sealer.key_source_calls(),
            2,
            "a new data key after the bound"
        );
    }

    #[tokio::test]
    async fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("voxgate.key");
        let ctx = SealContext::new("t", Purpose::RoleArn, "a");
        let sealed = Sealer::local_key_file(&path)
            .expect("create")
            .seal(b"v", &ctx)
            .await
            .expect("seal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // A second process opens what the first sealed.
            let again = Sealer::local_key_file(&path).expect("load");
            assert_eq!(
                again.open(&sealed, &ctx).await.expect("open").as_slice(),
                b"v"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = Sealer::local_key_file(&path).expect_err("world-readable key refused");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[tokio::test]
    async fn key_caches_are_bounded_and_pruned_by_age() {
        let (_dir, sealer) = local();
        let mut sealed = Vec::new();
        for i in 0..(ENCRYPT_CACHE_ENTRIES + 50) {
            let ctx = SealContext::new("t", Purpose::TotpKey, &format!("u_{i}"));
            sealed.push((sealer.seal(b"k", &ctx).await.expect("seal"), ctx));
        }
        assert_eq!(
            sealer.cached_keys().0,
            ENCRYPT_CACHE_ENTRIES,
            "bounded by entries"
        );
        for (value, ctx) in &sealed {
            sealer.open(value, ctx).await.expect("open");
        }
        assert_eq!(sealer.cached_keys().1, ENCRYPT_CACHE_ENTRIES + 50);
        // Past their age, keys are swept out of both caches (with their key schedules).
        sealer.prune(Instant::now() + DATA_KEY_MAX_AGE + Duration::from_secs(1));
        assert_eq!(sealer.cached_keys(), (0, 0));
        // And still open what they sealed, by asking the key source again.
        let calls = sealer.key_source_calls();
        let (value, ctx) = &sealed[0];
        sealer.open(value, ctx).await.expect("open");
        assert_eq!(sealer.key_source_calls(), calls + 1);
    }

    #[test]
    fn debug_never_shows_contents() {
        let sealed = Sealed::from_bytes(b"VXS1 secret bytes".to_vec());
        assert_eq!(format!("{sealed:?}"), "Sealed(<17 bytes>)");
    }
}
