//! Everything that talks to AWS on voxgate's own behalf: sealing secrets (KMS envelope
//! encryption), the STS credential broker, and the SDK configuration they share.
//!
//! Must not know about HTTP or Alexa; errors are typed here and become sentences in
//! `skill`.

pub mod arn;
pub mod broker;
pub mod seal;

/// Loads AWS settings the standard way (environment, profile, instance metadata), with
/// `AWS_ENDPOINT_URL` honoured. Used by the binary; tests build their own config.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The sealer for `sealing`: KMS with voxgate's own AWS identity, or the local key file
/// (with a loud warning: it is for development only).
pub fn sealer(
    sealing: &crate::config::Sealing,
    sdk: &aws_config::SdkConfig,
) -> Result<seal::Sealer, seal::SealError> {
    match sealing {
        crate::config::Sealing::Kms(key_id) => Ok(seal::Sealer::kms(
            aws_sdk_kms::Client::new(sdk),
            key_id.clone(),
        )),
        crate::config::Sealing::LocalKeyFile(path) => {
            tracing::warn!(
                key_file = %path.display(),
                "SECRETS ARE SEALED WITH A LOCAL KEY FILE: this is for development only; set \
                 --kms-key-id (VOXGATE_KMS_KEY_ID) to seal with AWS KMS"
            );
            seal::Sealer::local_key_file(path)
        }
    }
}
