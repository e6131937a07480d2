//! Criterion benchmarks of voxgate's hot paths (figures, not tests; `cargo bench`):
//! request verification with a cached chain; envelope parse, routing and response of a Help
//! intent; the gate's hold and confirm on SQLite; and a credential-broker cache hit (against
//! moto: `$VOXGATE_TEST_MOTO_URL`, else a `.venv/bin/moto_server` started for the run).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use criterion::{Criterion, criterion_group, criterion_main};
use voxgate::alexa::chain::{ChainSource, ChainStore, TrustRoots};
use voxgate::alexa::envelope::RequestEnvelope;
use voxgate::alexa::verify::{Mode, RequestVerifier, SignatureHeaders};
use voxgate::audit::Actor;
use voxgate::clock::{Clock, SystemClock};
use voxgate::cloud::broker::Broker;
use voxgate::cloud::seal::Sealer;
use voxgate::gate::{Execution, Gate, Verdict};
use voxgate::ops::Operation;
use voxgate::ops::instances::{Action, InstanceOperation};
use voxgate::skill::Skill;
use voxgate::store::{
    AccountName, AlexaUserId, NewUser, Store, Tenant, TenantName, User, UserName,
};

const SKILL: &str = "amzn1.ask.skill.00000000-0000-0000-0000-00000000bench";

fn help_request(n: u64) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    serde_json::json!({
        "version": "1.0",
        "session": {"new": true, "sessionId": format!("s-{n}"),
            "application": {"applicationId": SKILL}, "user": {"userId": "amzn1.ask.account.B"}},
        "context": {"System": {"application": {"applicationId": SKILL},
            "user": {"userId": "amzn1.ask.account.B"}}},
        "request": {"type": "IntentRequest", "requestId": format!("r-{n}"),
            "timestamp": now.split('.').next().unwrap().trim_end_matches('Z').to_owned() + "Z",
            "locale": "en-US", "intent": {"name": "AMAZON.HelpIntent", "confirmationStatus": "NONE"}}
    })
    .to_string()
    .into_bytes()
}

fn verification(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let made = voxgate::devca::init(&dir.path().join("ca")).unwrap();
    let signer = voxgate::devca::Signer::load(&dir.path().join("ca")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chains = ChainStore::new(
        TrustRoots::from_pem_file(&made.roots).unwrap(),
        ChainSource::Directory(made.certs.clone()),
    )
    .unwrap();
    let verifier = RequestVerifier::new(
        Mode::Enforce(Box::new(chains)),
        vec![SKILL.to_owned()],
        Arc::new(SystemClock),
    );
    // Signed requests made up front (signing is not what is measured); the replay guard
    // sees each once.
    let requests: Vec<(Vec<u8>, String)> = (0..20_000)
        .map(|n| {
            let body = help_request(n);
            let signature = signer.sign(&body).unwrap();
            (body, signature)
        })
        .collect();
    let mut next = requests.iter().cycle();
    // Warm the chain cache.
    let (body, signature) = next.next().unwrap();
    fn headers(signature: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            cert_chain_url: Some(voxgate::devca::CERT_URL),
            signature_256: Some(signature),
            signature_sha1: None,
            proxied: false,
        }
    }
    runtime
        .block_on(verifier.verify(headers(signature), body))
        .unwrap();
    c.bench_function("verify a signed request (cached chain)", |b| {
        b.iter(|| {
            let (body, signature) = next.next().unwrap();
            // The in-memory replay guard refuses repeats after the first lap; both answers
            // cost the same signature work.
            let _ = runtime.block_on(verifier.verify(headers(signature), body));
        })
    });
}

/// An AWS endpoint where nothing listens: for benchmarks that must not reach AWS.
const NO_AWS: &str = "http://127.0.0.1:9";

/// SDK settings as the tests use them: region eu-west-1, static test credentials, the
/// given endpoint, no retries.
fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "bench",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// voxgate's parts, built as `src/app.rs` builds them: a SQLite store in `dir`, the local
/// key file sealer, the broker, the audit log with its chain key and checkpoints, the gate
/// and the skill.
struct Parts {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    broker: Arc<Broker>,
    gate: Arc<Gate>,
    skill: Skill,
}

async fn parts(dir: &Path, aws: SdkConfig) -> Parts {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let url = format!("sqlite://{}", dir.join("voxgate.db").display());
    let store = voxgate::store::connect(&url).await.unwrap();
    let sealing = voxgate::config::Sealing::LocalKeyFile(dir.join("voxgate.key"));
    let sealer = Arc::new(voxgate::cloud::sealer(&sealing, &aws).unwrap());
    assert!(
        !sealer.uses_kms(),
        "the benchmarks seal with a local key file"
    );
    let broker = Arc::new(
        Broker::new(
            aws,
            Arc::clone(&sealer),
            Arc::clone(&clock),
            time::Duration::seconds(900),
        )
        .unwrap(),
    );
    let identity = voxgate::identity::Identity::new(Arc::clone(&store), None);
    let chain_key = voxgate::audit::ChainKey::load(store.as_ref(), &sealer)
        .await
        .unwrap();
    let checkpoints = Arc::new(
        voxgate::audit::checkpoint::Checkpoints::open(&dir.join("checkpoints"), &chain_key)
            .unwrap(),
    );
    let gate = Arc::new(Gate::new(
        Arc::clone(&store),
        Arc::clone(&sealer),
        voxgate::audit::AuditLog::new(Arc::clone(&store), chain_key).with_checkpoints(checkpoints),
        Arc::clone(&clock),
        voxgate::gate::DEFAULT_TTL,
    ));
    let skill = Skill::new(
        Arc::clone(&store),
        identity,
        Arc::clone(&broker),
        Arc::clone(&gate),
        voxgate::ops::ManagedTag::parse("voxgate:managed=true").unwrap(),
    );
    Parts {
        store,
        sealer,
        broker,
        gate,
        skill,
    }
}

async fn tenant(store: &dyn Store, name: &str) -> Tenant {
    store
        .add_tenant(&TenantName::parse(name).unwrap(), 0)
        .await
        .unwrap()
}

async fn enrol(store: &dyn Store, tenant: &Tenant, n: usize) -> User {
    store
        .add_user(
            &NewUser {
                tenant_id: tenant.id.clone(),
                name: UserName::parse(&format!("user-{n}")).unwrap(),
                alexa_user_id: Some(
                    AlexaUserId::parse(&format!("amzn1.ask.account.BENCH{n}")).unwrap(),
                ),
                oauth_subject: None,
            },
            0,
        )
        .await
        .unwrap()
}

fn help_intent(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let parts = runtime.block_on(parts(dir.path(), sdk_config(NO_AWS)));
    let body = help_request(0);
    c.bench_function("envelope parse + route + response (Help intent)", |b| {
        b.iter(|| {
            let envelope = RequestEnvelope::from_slice(&body).unwrap();
            let response = runtime.block_on(parts.skill.handle(&envelope));
            serde_json::to_vec(&response).unwrap()
        })
    });
}

fn gate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let parts = runtime.block_on(parts(dir.path(), sdk_config(NO_AWS)));
    let store = parts.store.as_ref();
    let gate = &parts.gate;
    let actor = Actor::AlexaSession("bench".to_owned());
    let (users, operation) = runtime.block_on(async {
        let tenant = tenant(store, "acme").await;
        let linked = voxgate::accounts::link(
            store,
            &parts.sealer,
            &tenant,
            &AccountName::parse("prod").unwrap(),
            &voxgate::cloud::arn::RoleArn::parse("arn:aws:iam::123456789012:role/voxgate-access")
                .unwrap(),
            &voxgate::cloud::arn::Region::parse("eu-west-1").unwrap(),
            0,
        )
        .await
        .unwrap();
        let mut users = Vec::new();
        for n in 0..16 {
            users.push(enrol(store, &tenant, n).await);
        }
        let operation = Operation::Instance(InstanceOperation {
            action: Action::Stop,
            account_id: linked.account.id.as_str().to_owned(),
            account_name: "prod".to_owned(),
            region: "eu-west-1".to_owned(),
            instance_id: "i-0123456789abcdef0".to_owned(),
            instance_name: "web-1".to_owned(),
        });
        // Each user's key is made by their first hold; the measured holds find it.
        for user in &users {
            let held = gate.hold(user, &operation, &actor).await.unwrap();
            gate.deny(user, &held.id, &actor).await.unwrap();
        }
        (users, operation)
    });
    let mut next = users.iter().cycle();
    // A user has one pending challenge at a time: each measured hold is denied, unmeasured,
    // so the next hold of that user is for a fresh challenge.
    c.bench_function("gate hold (SQLite)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let user = next.next().unwrap();
                    let started = Instant::now();
                    let held = gate.hold(user, &operation, &actor).await.unwrap();
                    spent += started.elapsed();
                    gate.deny(user, &held.id, &actor).await.unwrap();
                }
                spent
            })
        })
    });
    // A hold and its right code made unmeasured; the confirm measured; the approved
    // operation then recorded as executed, unmeasured.
    c.bench_function("gate confirm, right code (SQLite)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let user = next.next().unwrap();
                    let held = gate.hold(user, &operation, &actor).await.unwrap();
                    let code = gate.current_code(&held).await.unwrap().code;
                    let started = Instant::now();
                    let verdict = gate
                        .confirm(user, Some(&held.id), &code, &actor)
                        .await
                        .unwrap();
                    spent += started.elapsed();
                    let Verdict::Approved(approved) = verdict else {
                        panic!("the right code was not approved: {verdict:?}");
                    };
                    gate.finish(&approved, Execution::Executed(None), &actor)
                        .await
                        .unwrap();
                }
                spent
            })
        })
    });
}

/// A moto_server started by this benchmark, stopped when dropped.
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `$VOXGATE_TEST_MOTO_URL`, else a moto_server of our own on a free port.
fn moto() -> (String, Option<Moto>) {
    if let Ok(url) = std::env::var("VOXGATE_TEST_MOTO_URL") {
        return (url, None);
    }
    let server = std::env::var("VOXGATE_MOTO_SERVER")
        .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
    assert!(
        Path::new(&server).exists(),
        "moto_server not found at {server}: set VOXGATE_TEST_MOTO_URL, or run ./scripts/test, \
         which installs moto into .venv"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (format!("http://127.0.0.1:{port}"), Some(moto))
}

fn broker_cache_hit(c: &mut Criterion) {
    let (endpoint, _moto) = moto();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let parts = runtime.block_on(parts(dir.path(), sdk_config(&endpoint)));
    let store = parts.store.as_ref();
    let broker = &parts.broker;
    let policy = voxgate::ops::instances::list_instances_policy();
    let (account, user) = runtime.block_on(async {
        let tenant = tenant(store, "acme").await;
        let user = enrol(store, &tenant, 0).await;
        let linked = voxgate::accounts::link(
            store,
            &parts.sealer,
            &tenant,
            &AccountName::parse("prod").unwrap(),
            &voxgate::cloud::arn::RoleArn::parse("arn:aws:iam::210987654321:role/voxgate-access")
                .unwrap(),
            &voxgate::cloud::arn::Region::parse("eu-west-1").unwrap(),
            0,
        )
        .await
        .unwrap();
        // The one AssumeRole: the session is cached from here on.
        broker
            .session(&linked.account, &user, &policy)
            .await
            .unwrap();
        (linked.account, user)
    });
    assert_eq!(
        broker.sts_calls(),
        1,
        "the warm-up call assumes the role once"
    );
    c.bench_function("broker cache hit (session already cached)", |b| {
        b.iter(|| {
            runtime
                .block_on(broker.session(&account, &user, &policy))
                .unwrap()
        })
    });
    // A warm read makes no STS call; and no KMS call, as the sealer is the local key file
    // (and the cached session is opened with the broker's in-memory key, not the sealer).
    assert_eq!(
        broker.sts_calls(),
        1,
        "a cached session must not call STS again"
    );
}

criterion_group!(benches, verification, help_intent, gate, broker_cache_hit);
criterion_main!(benches);
