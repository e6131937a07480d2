//! Everything that talks to AWS on voxgate's own behalf: sealing secrets (KMS envelope
//! encryption), the STS credential broker, and the SDK configuration they share.
//!
//! Must not know about HTTP or Alexa; errors are typed here and become sentences in
//! `skill`.

pub mod arn;
pub mod broker;
pub mod policy;
pub mod sdk;
pub mod seal;

/// Loads AWS settings the standard way (environment, profile, instance metadata), with
/// `AWS_ENDPOINT_URL` honoured. Used by the binary; tests build their own config.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The sealer for `sealing`: KMS with voxgate's own AWS identity, or the local key file
/// (for development only: `serve` warns about it loudly).
pub fn sealer(
    sealing: &crate::config::Sealing,
    sdk: &aws_config::SdkConfig,
) -> Result<seal::Sealer, seal::SealError> {
    match sealing {
        crate::config::Sealing::Kms(key_id) => {
            let config = aws_sdk_kms::config::Builder::from(sdk)
                .timeout_config(sdk::timeouts())
                .retry_config(sdk::read_retries())
                .build();
            Ok(seal::Sealer::kms(
                aws_sdk_kms::Client::from_conf(config),
                key_id.clone(),
            ))
        }
        crate::config::Sealing::LocalKeyFile(path) => seal::Sealer::local_key_file(path),
    }
}

/// Why one of voxgate's own keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ServiceKeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The key could not be sealed or opened.
    #[error("voxgate's key cannot be opened: {0}")]
    Seal(seal::SealError),
    /// No randomness.
    #[error("no randomness available")]
    Random,
}

impl From<seal::SealError> for ServiceKeyError {
    fn from(error: seal::SealError) -> Self {
        // Not a `source`: the message already says it, and `{:#}` would say it twice.
        Self::Seal(error)
    }
}

/// One of voxgate's own 32-byte keys, by `name`: made and sealed on first use, kept in the
/// store, the same for every replica and restart.
pub async fn service_key(
    store: &dyn crate::store::Store,
    sealer: &seal::Sealer,
    name: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ServiceKeyError> {
    use ring::rand::SecureRandom as _;
    let ctx = seal::SealContext::new("voxgate", seal::Purpose::ServiceKey, name);
    let sealed = match store.service_secret(name).await? {
        Some(sealed) => sealed,
        None => {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            ring::rand::SystemRandom::new()
                .fill(key.as_mut())
                .map_err(|_| ServiceKeyError::Random)?;
            let sealed = sealer.seal(key.as_ref(), &ctx).await?;
            // Replicas racing to make it agree on whichever was stored first.
            store.service_secret_once(name, &sealed).await?
        }
    };
    Ok(sealer.open(&sealed, &ctx).await?)
}
