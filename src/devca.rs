//! A development certificate authority shaped like Amazon's request signing: a root, an
//! intermediate and an RSA signing certificate for `echo-api.amazon.com`, with the chain
//! filed where `--alexa-cert-dir` looks for it. `voxgate serve --alexa-trust-roots
//! DIR/roots.pem --alexa-cert-dir DIR/certs` then verifies requests signed with
//! `DIR/signing-key.pem` exactly as it verifies Alexa's, every check switched on.
//!
//! For local use only: the keys are made here and the root is trusted only by a voxgate
//! told to trust it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_RSA_SHA256,
};
use ring::signature::RsaKeyPair;
use time::{Duration, OffsetDateTime};

use crate::alexa::cert_url::CertChainUrl;

/// The certificate URL requests signed by a development CA name.
pub const CERT_URL: &str = "https://s3.amazonaws.com/echo.api/voxgate-dev-ca.pem";
/// The trust bundle `serve --alexa-trust-roots` takes.
pub const ROOTS_FILE: &str = "roots.pem";
/// The directory `serve --alexa-cert-dir` takes.
pub const CERTS_DIR: &str = "certs";
/// The signing key (PKCS#8, mode 0600).
pub const KEY_FILE: &str = "signing-key.pem";

/// Why the development CA could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    /// The directory already holds one.
    #[error("{0} already holds a development CA; use it as it is, or choose an empty directory")]
    Exists(PathBuf),
    /// The directory holds none.
    #[error("{0} holds no development CA: make one with `voxgate dev-ca init {0}`")]
    Missing(PathBuf),
    /// A file could not be written or read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A certificate or key could not be made.
    #[error("could not make the certificates: {0}")]
    Make(String),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> DevCaError + '_ {
    move |e| DevCaError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn make(e: impl std::fmt::Display) -> DevCaError {
    DevCaError::Make(e.to_string())
}

fn ca(name: &str, now: OffsetDateTime) -> Result<CertificateParams, DevCaError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(make)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevCaError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(file_error(path))?;
    file.write_all(contents).map_err(file_error(path))
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct Made {
    /// The trust bundle.
    pub roots: PathBuf,
    /// The chain directory.
    pub certs: PathBuf,
}

/// Makes a development CA in `dir` (created if missing; refused if it holds one).
pub fn init(dir: &Path) -> Result<Made, DevCaError> {
    if dir.join(KEY_FILE).exists() {
        return Err(DevCaError::Exists(dir.to_owned()));
    }
    let certs = dir.join(CERTS_DIR);
    std::fs::create_dir_all(&certs).map_err(file_error(&certs))?;
    let now = OffsetDateTime::now_utc();

    let root_key = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(make)?;
    let root_params = ca("voxgate development root", now)?;
    let root_cert = root_params.self_signed(&root_key).map_err(make)?;
    let root = Issuer::new(root_params, root_key);

    let intermediate_key = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(make)?;
    let intermediate_params = ca("voxgate development intermediate", now)?;
    let intermediate_cert = intermediate_params
        .signed_by(&intermediate_key, &root)
        .map_err(make)?;
    let intermediate = Issuer::new(intermediate_params, intermediate_key);

    let leaf_key = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(make)?;
    let mut leaf = CertificateParams::new(vec!["echo-api.amazon.com".to_owned()]).map_err(make)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "echo-api.amazon.com");
    leaf.is_ca = IsCa::NoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::days(1);
    leaf.not_after = now + Duration::days(365);
    let leaf_cert = leaf.signed_by(&leaf_key, &intermediate).map_err(make)?;

    let url = CertChainUrl::parse(CERT_URL).map_err(make)?;
    let chain_path = certs.join(url.cache_file_name());
    std::fs::write(
        &chain_path,
        format!("{}{}", leaf_cert.pem(), intermediate_cert.pem()),
    )
    .map_err(file_error(&chain_path))?;
    let roots = dir.join(ROOTS_FILE);
    std::fs::write(&roots, root_cert.pem()).map_err(file_error(&roots))?;
    write_private(&dir.join(KEY_FILE), leaf_key.serialize_pem().as_bytes())?;
    Ok(Made { roots, certs })
}

/// Signs request bodies as Alexa would, with a development CA's signing key.
pub struct Signer {
    key: RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// The signer of the development CA in `dir`.
    pub fn load(dir: &Path) -> Result<Self, DevCaError> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            return Err(DevCaError::Missing(dir.to_owned()));
        }
        let pem = std::fs::read_to_string(&path).map_err(file_error(&path))?;
        let der = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .map_err(|e| DevCaError::File {
                path: path.clone(),
                reason: format!("not a PEM key ({e})"),
            })?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| DevCaError::File {
            path,
            reason: format!("not an RSA PKCS#8 key ({e})"),
        })?;
        Ok(Self {
            key,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// The `Signature-256` header for `body` (RSA PKCS#1 v1.5 over SHA-256, base64).
    pub fn sign(&self, body: &[u8]) -> Result<String, DevCaError> {
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                body,
                &mut signature,
            )
            .map_err(make)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }

    /// The headers Alexa sends with `body`.
    pub fn headers(&self, body: &[u8]) -> Result<[(&'static str, String); 2], DevCaError> {
        Ok([
            ("SignatureCertChainUrl", CERT_URL.to_owned()),
            ("Signature-256", self.sign(body)?),
        ])
    }
}
