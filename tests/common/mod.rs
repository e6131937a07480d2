//! Shared test harness: a private PKI shaped like Amazon's (root → intermediate → RSA
//! signing certificate for echo-api.amazon.com), request signing, and a voxgate spawned on
//! port 0 with a clock the test controls.
#![allow(dead_code, clippy::unwrap_used)]

/// Runs an async scenario `fn(Backend)` as two tests: on SQLite and on PostgreSQL.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario(super::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$scenario(super::Backend::Postgres).await
            }
        }
    };
}

pub mod aws;
pub mod db;
pub mod process;
pub mod scene;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_RSA_SHA256, SigningKey as _,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use tokio::sync::oneshot;
use voxgate::app::{App, Runtime};
use voxgate::clock::ManualClock;
use voxgate::cloud::arn::{Region, RoleArn};
use voxgate::cloud::broker::Broker;
use voxgate::cloud::seal::Sealer;
use voxgate::config::ServeArgs;
use voxgate::store::{
    AccountName, AlexaUserId, NewUser, Store, Tenant, TenantName, User, UserName,
};

pub use db::{Backend, TestDb};

/// The skill id the test server accepts (and the fixtures carry).
pub const SKILL_ID: &str = "amzn1.ask.skill.11111111-2222-3333-4444-555555555555";
/// A certificate URL of the shape Alexa sends.
pub const CERT_URL: &str = "https://s3.amazonaws.com/echo.api/echo-api-cert-12.pem";

/// Validity and names of the signing certificate.
pub struct LeafOptions {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sans: Vec<String>,
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
}

impl Default for LeafOptions {
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(30),
            sans: vec!["echo-api.amazon.com".into()],
            extended_key_usages: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// A root, an intermediate and a signing certificate with its key.
pub struct Pki {
    pub root_pem: String,
    /// Signing certificate first, then the intermediate: what Alexa's URL serves.
    pub chain_pem: String,
    leaf_key: KeyPair,
}

fn rsa_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap()
}

fn ca_params(name: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(365);
    params.not_after = now + Duration::days(365);
    params
}

impl Pki {
    pub fn new(leaf: LeafOptions) -> Self {
        let root_key = rsa_key();
        let root_params = ca_params("voxgate test root");
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Issuer::new(root_params, root_key);

        let intermediate_key = rsa_key();
        let intermediate_params = ca_params("voxgate test intermediate");
        let intermediate_cert = intermediate_params
            .signed_by(&intermediate_key, &root)
            .unwrap();
        let intermediate = Issuer::new(intermediate_params, intermediate_key);

        let leaf_key = rsa_key();
        let mut params = CertificateParams::new(leaf.sans).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "echo-api.amazon.com");
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = leaf.extended_key_usages;
        params.not_before = leaf.not_before;
        params.not_after = leaf.not_after;
        let leaf_cert = params.signed_by(&leaf_key, &intermediate).unwrap();

        Self {
            root_pem: root_cert.pem(),
            chain_pem: format!("{}{}", leaf_cert.pem(), intermediate_cert.pem()),
            leaf_key,
        }
    }

    /// Base64 `Signature-256` of `body` (RSA PKCS#1 v1.5 over SHA-256).
    pub fn sign(&self, body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.leaf_key.sign(body).unwrap())
    }

    /// The headers Alexa sends with `body`.
    pub fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            ("SignatureCertChainUrl", CERT_URL.to_owned()),
            ("Signature-256", self.sign(body)),
        ]
    }
}

/// A valid PKI shared by the tests that need nothing special (key generation is slow).
pub static PKI: LazyLock<Pki> = LazyLock::new(|| Pki::new(LeafOptions::default()));

/// The file name of a pre-fetched chain: hex SHA-256 of the URL as the `url` crate
/// normalises it. Computed here independently of voxgate's own code.
pub fn chain_file_name(url: &str) -> String {
    let normalised = url::Url::parse(url).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, normalised.as_str().as_bytes());
    format!("{}.pem", hex::encode(digest))
}

/// Runs a voxgate command (e.g. the operator CLI) to its end without stopping this test's
/// runtime: an in-process server on it goes on serving, and finishing the writes it has
/// begun, as a server in a process of its own would. (Blocking the runtime instead can
/// leave the server's SQLite write lock held for as long as the command runs.)
pub async fn run_command(command: std::process::Command) -> std::process::Output {
    tokio::process::Command::from(command)
        .output()
        .await
        .unwrap()
}

/// A voxgate serving on a free loopback port until dropped.
pub struct TestServer {
    pub base_url: String,
    pub clock: ManualClock,
    pub cert_dir: tempfile::TempDir,
    pub db: TestDb,
    pub store: Arc<dyn Store>,
    pub broker: Arc<Broker>,
    pub gate: Arc<voxgate::gate::Gate>,
    key_file: std::path::PathBuf,
    _roots: tempfile::NamedTempFile,
    shutdown: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    http: reqwest::Client,
}

pub fn serve_args(roots: &Path, cert_dir: &Path, db: &TestDb, key_file: &Path) -> ServeArgs {
    let mut args = ServeArgs::local(db.url.clone(), key_file.to_owned());
    args.skill_ids = vec![SKILL_ID.to_owned()];
    args.alexa_trust_roots = Some(roots.to_owned());
    args.alexa_cert_dir = Some(cert_dir.to_owned());
    args
}

/// An AWS endpoint where nothing listens: for tests that must not reach AWS.
pub const NO_AWS: &str = "http://127.0.0.1:9";

impl TestServer {
    /// Trusts `pki`'s root and serves its chain for [`CERT_URL`]; SQLite, no AWS.
    pub async fn start(pki: &Pki) -> Self {
        Self::start_full(pki, Backend::Sqlite, NO_AWS, |_| {}).await
    }

    /// As [`TestServer::start`], with changed flags.
    pub async fn start_with(pki: &Pki, tweak: impl FnOnce(&mut ServeArgs)) -> Self {
        Self::start_full(pki, Backend::Sqlite, NO_AWS, tweak).await
    }

    /// A server on `backend`, reaching AWS at `aws_endpoint`.
    pub async fn start_full(
        pki: &Pki,
        backend: Backend,
        aws_endpoint: &str,
        tweak: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let db = TestDb::new(backend).await;
        Self::start_on(
            pki,
            db,
            aws::sdk_config(aws_endpoint),
            ManualClock::starting_now(),
            tweak,
        )
        .await
    }

    /// A server on an existing database (e.g. a second replica, or after a restart).
    pub async fn start_on(
        pki: &Pki,
        db: TestDb,
        aws: aws_config::SdkConfig,
        clock: ManualClock,
        tweak: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let roots = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(roots.path(), &pki.root_pem).unwrap();
        let cert_dir = tempfile::tempdir().unwrap();
        let key_file = db.dir.path().join("voxgate.key");
        let mut args = serve_args(roots.path(), cert_dir.path(), &db, &key_file);
        tweak(&mut args);
        let runtime = Runtime {
            clock: Arc::new(clock.clone()),
            aws,
        };
        let app = App::build(args.into_settings().unwrap(), runtime)
            .await
            .unwrap();
        let addr = app.local_addr().unwrap();
        let store = app.store();
        let broker = app.broker();
        let gate = app.gate();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.serve(async {
            let _ = rx.await;
        }));
        let server = Self {
            base_url: format!("http://{addr}"),
            clock,
            cert_dir,
            db,
            store,
            broker,
            gate,
            key_file,
            _roots: roots,
            shutdown: std::sync::Mutex::new(Some(tx)),
            http: reqwest::Client::new(),
        };
        server.install_chain(CERT_URL, &pki.chain_pem);
        server
    }

    /// A sealer on the same key file as the server's.
    pub fn sealer(&self) -> Sealer {
        Sealer::local_key_file(&self.key_file).unwrap()
    }

    /// Adds a tenant.
    pub async fn tenant(&self, name: &str) -> Tenant {
        self.store
            .add_tenant(&TenantName::parse(name).unwrap(), 0)
            .await
            .unwrap()
    }

    /// Enrols a user by Alexa user id.
    pub async fn enrol(&self, tenant: &Tenant, name: &str, alexa_user_id: &str) -> User {
        self.store
            .add_user(
                &NewUser {
                    tenant_id: tenant.id.clone(),
                    name: UserName::parse(name).unwrap(),
                    alexa_user_id: Some(AlexaUserId::parse(alexa_user_id).unwrap()),
                    oauth_subject: None,
                },
                0,
            )
            .await
            .unwrap()
    }

    /// Links `arn:aws:iam::ACCOUNT:role/voxgate-access` to `tenant`.
    pub async fn link(
        &self,
        tenant: &Tenant,
        name: &str,
        account: &str,
        region: &str,
    ) -> voxgate::accounts::Linked {
        voxgate::accounts::link(
            self.store.as_ref(),
            &self.sealer(),
            tenant,
            &AccountName::parse(name).unwrap(),
            &RoleArn::parse(&format!("arn:aws:iam::{account}:role/voxgate-access")).unwrap(),
            &Region::parse(region).unwrap(),
            0,
        )
        .await
        .unwrap()
    }

    /// Puts `chain_pem` where voxgate looks for the chain of `url`.
    pub fn install_chain(&self, url: &str, chain_pem: &str) {
        std::fs::write(self.cert_dir.path().join(chain_file_name(url)), chain_pem).unwrap();
    }

    pub fn now(&self) -> OffsetDateTime {
        use voxgate::clock::Clock as _;
        self.clock.now()
    }

    /// POSTs `body` to `/alexa` with exactly these headers.
    pub async fn post(&self, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/alexa", self.base_url))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// Begins a graceful stop (as SIGTERM does): requests in flight are still answered.
    #[allow(dead_code)]
    pub fn begin_shutdown(&self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }

    /// POSTs `body` to a companion endpoint, with a device token if given.
    pub async fn post_companion(
        &self,
        path: &str,
        body: String,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POSTs `body` signed by `pki`, as Alexa would.
    pub async fn post_signed(&self, pki: &Pki, body: Vec<u8>) -> (u16, Value) {
        let headers = pki.headers(&body);
        self.post(body, &headers).await
    }

    /// Says `body` as Alexa would and expects an answer (200).
    pub async fn say(&self, body: Value) -> Value {
        let (status, response) = self.post_signed(&PKI, bytes(&body)).await;
        assert_eq!(status, 200, "{response}");
        response
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl TestServer {
    /// Stops the server and hands back its database (a restart keeps the data).
    pub fn into_db(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let placeholder = TestDb::placeholder();
        std::mem::replace(&mut self.db, placeholder)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

/// A string no other call in this test run returns.
pub fn unique_suffix() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}_{}_{n}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

/// An `IntentRequest` from `user_id` (an Alexa user id).
pub fn intent_from(
    user_id: &str,
    intent: &str,
    slots: &[(&str, &str)],
    at: OffsetDateTime,
) -> Value {
    let mut body = intent_at(intent, slots, at);
    body["session"]["user"]["userId"] = Value::String(user_id.to_owned());
    body["context"]["System"]["user"]["userId"] = Value::String(user_id.to_owned());
    body
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A request id no other request of this test run has.
pub fn fresh_request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "amzn1.echo-api.request.test-{}-{}-{n}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

/// A fixture from `tests/fixtures/`, as JSON.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A fixture made current: timestamp `at`, a fresh request id.
pub fn request_at(name: &str, at: OffsetDateTime) -> Value {
    let mut body = fixture(name);
    body["request"]["timestamp"] = Value::String(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    body["request"]["requestId"] = Value::String(fresh_request_id());
    body
}

/// An `IntentRequest` for `intent` with these slot values, at `at`.
pub fn intent_at(intent: &str, slots: &[(&str, &str)], at: OffsetDateTime) -> Value {
    let mut body = request_at("dialog-started", at);
    let mut slot_map = serde_json::Map::new();
    for (name, value) in slots {
        slot_map.insert(
            (*name).to_owned(),
            serde_json::json!({"name": name, "value": value, "confirmationStatus": "NONE"}),
        );
    }
    body["request"]["intent"] =
        serde_json::json!({"name": intent, "confirmationStatus": "NONE", "slots": slot_map});
    body
}

pub fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The spoken text of a response.
pub fn speech(response: &Value) -> String {
    let speech = &response["response"]["outputSpeech"];
    speech["text"]
        .as_str()
        .or_else(|| speech["ssml"].as_str())
        .unwrap_or_default()
        .to_owned()
}
