//! The scale run (`scripts/bench-scale` builds and runs it): voxgate's parts in one process,
//! built as `src/app.rs` builds them, on a SQLite store in a temporary directory with the
//! local key file sealer, with N tenants at once, each with one user and one linked account,
//! a cached read session and a pending challenge. Figures, not a test (issue 12: RSS goal
//! <= 200 MB; hold and confirm p99; STS at most one call per account and session policy per
//! ~55 minutes under any concurrency).
//!
//! 1. Creates N tenants, each with one user (with an Alexa user id) and one linked account
//!    (a distinct 12-digit AWS account each), plus the sample users of step 5 and 100
//!    spare accounts for the STS check. Each tenant's rows are what `voxgate::accounts::link`
//!    and the store's `add_*` calls write (`accounts::prepare` + `add_account` is `link`),
//!    but 500 tenants share one transaction: row by row this step alone would be 3N
//!    commits, each waiting for the disk. The harness keeps the users and accounts the
//!    store returned (looking a speaker up through the store costs O(N) a call at this
//!    scale; step 5 measures it); RSS is given with and without that copy.
//! 2. Warms the credential broker so every account has a cached session with the read
//!    policy of "what's running" (`list_instances_policy`), N calls with `--concurrency` in
//!    flight (a call left unanswered past voxgate's timeouts is made again, and counted).
//!    Then the STS check: 1,000 warm accounts, 50 concurrent calls each, must make no STS
//!    call; 100 never-warmed accounts, 50 concurrent calls each, exactly one each.
//! 3. Holds one challenge (stop an instance) per user, so N challenges are pending at once.
//! 4. Prints VmRSS and VmHWM (`/proc/self/status`) and the store's size.
//! 5. With the N pending: the sample users (whose keys exist, as for anyone who held before)
//!    hold one challenge each, then confirm it with the right code (`gate.confirm` alone,
//!    the code read just before, the approval finished afterwards, unmeasured); p50/p99/max.
//!    Then what every request does first, one at a time: the speaker by Alexa user id and
//!    their tenant's accounts, from the store. Then at steady offered rates (`--rates` /
//!    `SCALE_RATES`, default 100,500,1000 a second; an open loop, each operation in a task
//!    of its own): hold, confirm with the right code, finish; p50/p99/max of the hold and
//!    of the confirm at each rate.
//! 6. The ~55 minutes: for each spare account, a session with a second read policy (the
//!    alarms') is made with the clock set 54 minutes back (50 concurrent calls: one STS
//!    call), asked again at the real time, when it is 54 minutes old (50 calls: none), and
//!    2 minutes later, 56 minutes old (50 calls: exactly one). With the stub, what STS saw
//!    is checked too: one AssumeRole per account and policy, two for those refreshed at 56
//!    minutes. Then the final table.
//!
//! `--database-url` / `SCALE_DATABASE_URL` names a PostgreSQL server (admin URL) to run on
//! instead of SQLite, on a database of the run's own, dropped at the end.
//!
//! Settings (flags or environment): `--tenants` / `SCALE_TENANTS` (100000), `--samples` /
//! `SCALE_SAMPLES` (2000), `--concurrency` / `SCALE_CONCURRENCY` (64, operations in flight),
//! `--sts` / `SCALE_STS`:
//! - `stub` (default): a minimal STS of this program's own, in a process of its own (its
//!   memory is not in the measured RSS), answering AssumeRole as STS does, with a session
//!   token of 1,024 characters (AWS's are several hundred to over a thousand; moto's 356),
//!   and counting the calls per account and policy.
//! - `moto`: `$VOXGATE_TEST_MOTO_URL`, else a `.venv/bin/moto_server` started for the run
//!   (`VOXGATE_MOTO_SERVER` names another). moto's cost per request grows with the number
//!   of accounts it has seen (it copies its list of accounts on every request), from about
//!   200 AssumeRole/s to 30/s by 14,000 accounts on a 2-core machine: use it up to ~10,000.
//!
//! Challenges live for an hour (the longest `--challenge-ttl`) and sessions are asked for an
//! hour (`--session-duration 3600`), so none ends during the run. Exits non-zero if the STS
//! check fails.
#![allow(missing_docs)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use clap::Parser;
use time::OffsetDateTime;
use voxgate::audit::Actor;
use voxgate::clock::Clock;
use voxgate::cloud::arn::{Region as AwsRegion, RoleArn};
use voxgate::cloud::broker::{Broker, BrokerError};
use voxgate::cloud::policy::SessionPolicy;
use voxgate::cloud::seal::Sealer;
use voxgate::gate::{Execution, Gate, Verdict};
use voxgate::ops::Operation;
use voxgate::ops::instances::{Action, InstanceOperation};
use voxgate::store::{
    AccountName, AlexaUserId, LinkedAccount, NewUser, Store, TenantName, User, UserName,
};

// As the voxgate binary: RSS is measured with the allocator it runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "voxgate scale run (run by scripts/bench-scale)")]
struct Args {
    /// Tenants, each with one user, one linked account, a cached session and a challenge.
    #[arg(long, env = "SCALE_TENANTS", default_value_t = 100_000)]
    tenants: usize,
    /// Holds and confirms measured with all the tenants' challenges pending.
    #[arg(long, env = "SCALE_SAMPLES", default_value_t = 2_000)]
    samples: usize,
    /// Operations in flight at once.
    #[arg(long, env = "SCALE_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// What answers STS: `stub` (a minimal AssumeRole endpoint in a process of its own,
    /// counting the calls it gets per account and policy) or `moto` (moto_server, whose
    /// cost per request grows with the number of accounts it knows: fine to ~10,000).
    #[arg(long, env = "SCALE_STS", default_value = "stub", value_parser = ["stub", "moto"])]
    sts: String,
    /// A PostgreSQL server to run on instead of SQLite (an admin URL such as
    /// `postgres://postgres@127.0.0.1:5432/postgres`): the run creates a database of its
    /// own there and drops it at the end.
    #[arg(long, env = "SCALE_DATABASE_URL")]
    database_url: Option<String>,
    /// Offered rates (operations started per second, whatever is in flight) for the
    /// steady-rate step: each operation holds, then confirms, then is finished, in a task
    /// of its own started on time whatever is still running.
    #[arg(long, env = "SCALE_RATES", value_delimiter = ',', default_values_t = [100.0, 500.0, 1000.0])]
    rates: Vec<f64>,
    /// Internal: serve the STS stub on this port (the run starts itself with it).
    #[arg(long, hide = true)]
    serve_sts: Option<u16>,
}

/// Warm accounts asked again, concurrently, in the STS check.
const WARM_CHECKED: usize = 1_000;
/// Never-warmed accounts asked for the first time, concurrently, in the STS check.
const FRESH: usize = 100;
/// Concurrent calls for one account in the STS check.
const CALLS_PER_ACCOUNT: usize = 50;
/// Tenants written per transaction in step 1.
const BATCH: usize = 500;
/// The longest challenge lifetime voxgate accepts (`--challenge-ttl 3600`).
const CHALLENGE_TTL: time::Duration = time::Duration::hours(1);
/// The longest session voxgate asks for (`--session-duration 3600`).
const SESSION: time::Duration = time::Duration::hours(1);

/// The wall clock, moved by an offset on request (for the ~55-minute check only).
#[derive(Debug, Default)]
struct MovableClock {
    offset_ns: AtomicI64,
    /// The furthest it was ever moved on: the monotonic clock never goes back.
    furthest_ns: AtomicI64,
}

impl MovableClock {
    /// From now on, the clock reads `at` at this instant (and runs on from there).
    fn set(&self, at: OffsetDateTime) {
        let offset = at - OffsetDateTime::now_utc();
        let nanos = i64::try_from(offset.whole_nanoseconds()).unwrap_or(0);
        self.offset_ns.store(nanos, Ordering::SeqCst);
        self.furthest_ns.fetch_max(nanos, Ordering::SeqCst);
    }
}

impl Clock for MovableClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::nanoseconds(self.offset_ns.load(Ordering::SeqCst))
    }

    /// Moved on with the wall clock: the check stands for time having passed.
    fn monotonic(&self) -> std::time::Duration {
        let offset = u64::try_from(self.furthest_ns.load(Ordering::SeqCst)).unwrap_or(0);
        voxgate::clock::process_monotonic() + std::time::Duration::from_nanos(offset)
    }
}

/// What the timed steps' tasks share: one `Arc` to clone into each.
struct Samples {
    parts: Arc<Parts>,
    actor: Actor,
    /// The sample users (each with the account they act on).
    speakers: Vec<Speaker>,
}

/// voxgate's parts, as `App::build` makes them.
struct Parts {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    broker: Arc<Broker>,
    gate: Arc<Gate>,
    clock: Arc<MovableClock>,
}

async fn parts(dir: &Path, url: &str, aws: SdkConfig) -> anyhow::Result<Parts> {
    let clock = Arc::new(MovableClock::default());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = voxgate::store::connect(url).await?;
    let sealing = voxgate::config::Sealing::LocalKeyFile(dir.join("voxgate.key"));
    let sealer = Arc::new(voxgate::cloud::sealer(&sealing, &aws)?);
    ensure!(
        !sealer.uses_kms(),
        "the scale run seals with a local key file"
    );
    let broker = Arc::new(Broker::new(
        aws,
        Arc::clone(&sealer),
        Arc::clone(&dyn_clock),
        SESSION,
    )?);
    let chain_key = voxgate::audit::ChainKey::load(store.as_ref(), &sealer).await?;
    let checkpoints = Arc::new(voxgate::audit::checkpoint::Checkpoints::open(
        &dir.join("checkpoints"),
        &chain_key,
    )?);
    let gate = Arc::new(Gate::new(
        Arc::clone(&store),
        Arc::clone(&sealer),
        voxgate::audit::AuditLog::new(Arc::clone(&store), chain_key).with_checkpoints(checkpoints),
        dyn_clock,
        CHALLENGE_TTL,
    ));
    Ok(Parts {
        store,
        sealer,
        broker,
        gate,
        clock,
    })
}

/// SDK settings as the tests use them: region eu-west-1, static credentials, the given
/// endpoint, no retries.
fn sdk_config(endpoint: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key.to_owned(),
            secret_key.to_owned(),
            None,
            None,
            "scale",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// voxgate's own AWS identity in moto: an IAM user's access key in moto's default account,
/// made before any other account exists. moto finds the account of every request's access
/// key by looking through all its accounts in the order they were made (`get_account_id_from`),
/// so with the test key `testing` (in no account) each STS call would look at all N.
async fn moto_identity(endpoint: &str) -> anyhow::Result<SdkConfig> {
    let iam = aws_sdk_iam::Client::new(&sdk_config(endpoint, "testing", "testing"));
    let name = format!("voxgate-scale-{}", std::process::id());
    iam.create_user().user_name(&name).send().await?;
    let created = iam.create_access_key().user_name(&name).send().await?;
    let key = created.access_key().context("moto made no access key")?;
    Ok(sdk_config(
        endpoint,
        key.access_key_id(),
        key.secret_access_key(),
    ))
}

/// A server process started by this run (moto_server or the STS stub), stopped when
/// dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `$VOXGATE_TEST_MOTO_URL`, else a moto_server of our own on a free port.
fn moto() -> anyhow::Result<(String, Option<Server>)> {
    if let Ok(url) = std::env::var("VOXGATE_TEST_MOTO_URL") {
        return Ok((url, None));
    }
    let server = std::env::var("VOXGATE_MOTO_SERVER")
        .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
    ensure!(
        Path::new(&server).exists(),
        "moto_server not found at {server}: set VOXGATE_TEST_MOTO_URL, or run ./scripts/test, \
         which installs moto into .venv"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {server}"))?;
    let moto = Server(child);
    wait_for(port, "moto_server")?;
    Ok((format!("http://127.0.0.1:{port}"), Some(moto)))
}

/// Waits (up to a minute) until something listens on `port`.
fn wait_for(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The STS stub: this program again, with `--serve-sts PORT`, in a process of its own (so
/// its memory is not in the measured RSS).
fn stub() -> anyhow::Result<(String, Server)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["--serve-sts", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("cannot start the STS stub")?;
    let server = Server(child);
    wait_for(port, "the STS stub")?;
    Ok((format!("http://127.0.0.1:{port}"), server))
}

/// AssumeRole calls the stub got, by AWS account and session policy.
#[derive(Default)]
struct StubCounts {
    calls: u64,
    by_pair: std::collections::HashMap<(String, u64), u32>,
}

/// Serves `POST /` AssumeRole (any other action is refused) and `GET /counts`, until killed.
async fn serve_sts(port: u16) -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let counts = Arc::new(std::sync::Mutex::new(StubCounts::default()));
    let router = axum::Router::new()
        .route(
            "/",
            post(
                |axum::extract::State(counts): axum::extract::State<
                    Arc<std::sync::Mutex<StubCounts>>,
                >,
                 body: axum::body::Bytes| async move { assume_role(&counts, &body) },
            ),
        )
        .route(
            "/counts",
            get(
                |axum::extract::State(counts): axum::extract::State<
                    Arc<std::sync::Mutex<StubCounts>>,
                >| async move {
                    let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                    let repeated = counts.by_pair.values().filter(|&&c| c > 1).count();
                    let max = counts.by_pair.values().copied().max().unwrap_or(0);
                    format!("{} {} {repeated} {max}", counts.calls, counts.by_pair.len())
                },
            ),
        )
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

/// One AssumeRole answer, shaped as STS's: credentials as long as real ones (a session
/// token of 1,024 characters: AWS's run to several hundred with a session policy), expiring
/// after the asked duration.
fn assume_role(counts: &std::sync::Mutex<StubCounts>, body: &[u8]) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use base64::Engine as _;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map_or("", String::as_str);
    if field("Action") != "AssumeRole" {
        return (axum::http::StatusCode::BAD_REQUEST, "only AssumeRole").into_response();
    }
    let account = field("RoleArn").split(':').nth(4).unwrap_or("").to_owned();
    let policy = {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        field("Policy").hash(&mut hasher);
        hasher.finish()
    };
    let n = {
        let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.calls += 1;
        *counts.by_pair.entry((account.clone(), policy)).or_default() += 1;
        counts.calls
    };
    let seconds: i64 = field("DurationSeconds").parse().unwrap_or(3600);
    let expiration = (OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &n.to_be_bytes());
    let mut token = String::new();
    while token.len() < 1024 {
        token.push_str(&base64::engine::general_purpose::STANDARD.encode(digest.as_ref()));
    }
    token.truncate(1024);
    let secret: String = token.chars().rev().take(40).collect();
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleResult><AssumedRoleUser>\
         <Arn>arn:aws:sts::{account}:assumed-role/voxgate-access/scale</Arn>\
         <AssumedRoleId>AROASCALE{n:011}:scale</AssumedRoleId></AssumedRoleUser>\
         <Credentials><AccessKeyId>ASIA{n:016}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult>\
         <ResponseMetadata><RequestId>scale-{n}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>"
    );
    ([(axum::http::header::CONTENT_TYPE, "text/xml")], xml).into_response()
}

/// The stub's counts: calls, (account, policy) pairs, pairs asked more than once, most
/// calls for one pair.
async fn stub_counts(endpoint: &str) -> anyhow::Result<[u64; 4]> {
    let text = reqwest::get(format!("{endpoint}/counts"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    numbers
        .try_into()
        .map_err(|_| anyhow::anyhow!("the stub's counts are unreadable: {text}"))
}

fn tenant_alexa_id(n: usize) -> String {
    format!("amzn1.ask.account.SCALE{n:07}")
}

fn sample_alexa_id(n: usize) -> String {
    format!("amzn1.ask.account.SAMPLE{n:07}")
}

/// The distinct AWS account of tenant `n`'s linked account.
fn aws_account(n: usize) -> String {
    format!("{:012}", 200_000_000_000_u64 + n as u64)
}

/// The AWS account of spare account `n` (linked to tenant `n` beside its own).
fn spare_aws_account(n: usize) -> String {
    format!("{:012}", 300_000_000_000_u64 + n as u64)
}

/// Resident and peak resident memory of this process, in KiB.
fn memory_kib(pid: Option<u32>) -> (u64, u64) {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |pid| format!("/proc/{pid}/status"),
    );
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// Size of the store's files (database, WAL, shared memory), in bytes.
fn store_bytes(dir: &Path) -> (u64, u64) {
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    (
        size("voxgate.db"),
        size("voxgate.db-wal") + size("voxgate.db-shm"),
    )
}

/// p50, p99 and max of `samples`.
struct Summary {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples
            .get(rank.clamp(1, samples.len().max(1)) - 1)
            .copied()
            .unwrap_or_default()
    };
    Summary {
        count: samples.len(),
        p50: at(50.0),
        p99: at(99.0),
        max: samples.last().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs `work(0..n)` with `concurrency` tasks on the runtime (both cores), printing progress
/// every 30 s; returns what each call returned, in no particular order.
async fn in_parallel<T, F, Fut>(
    what: &str,
    n: usize,
    concurrency: usize,
    work: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let progress = {
        let done = Arc::clone(&done);
        let what = what.to_owned();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = done.load(Ordering::Relaxed);
                println!(
                    "    {what}: {done}/{n} after {} ({:.0}/s)",
                    secs(started.elapsed()),
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let work = Arc::clone(&work);
        let next = Arc::clone(&next);
        let done = Arc::clone(&done);
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                out.push(work(i).await?);
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut failed = None;
    while let Some(joined) = workers.join_next().await {
        match joined.context("a worker panicked").and_then(|r| r) {
            Ok(out) => all.extend(out),
            Err(error) => {
                failed.get_or_insert(error);
                // One failure stops the step: the others stop taking work.
                next.store(n, Ordering::Relaxed);
            }
        }
    }
    progress.abort();
    match failed {
        Some(error) => Err(error.context(format!("{what} failed"))),
        None => Ok(all),
    }
}

fn stop_instance(account: &LinkedAccount, n: usize) -> Operation {
    Operation::Instance(InstanceOperation {
        action: Action::Stop,
        account_id: account.id.as_str().to_owned(),
        account_name: account.name.clone(),
        region: account.region.clone(),
        instance_id: format!("i-{n:017x}"),
        instance_name: "web-1".to_owned(),
    })
}

/// `calls` concurrent `broker.session` calls for one account, released together; their
/// latencies.
async fn together(
    broker: &Arc<Broker>,
    account: &LinkedAccount,
    user: &User,
    policy: &SessionPolicy,
    calls: usize,
) -> anyhow::Result<Vec<Duration>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(calls));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..calls {
        let (broker, account, user, policy, barrier) = (
            Arc::clone(broker),
            account.clone(),
            user.clone(),
            policy.clone(),
            Arc::clone(&barrier),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            let started = Instant::now();
            broker.session(&account, &user, &policy).await?;
            anyhow::Ok(started.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(calls);
    while let Some(joined) = tasks.join_next().await {
        latencies.push(joined??);
    }
    Ok(latencies)
}

/// Pending challenges in the store now, and the store's size in bytes on PostgreSQL (read
/// on a connection of our own).
async fn pending_now(url: &str, now: i64) -> anyhow::Result<(i64, Option<i64>)> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM challenges WHERE state = 'pending' AND expires_at > $1",
    )
    .bind(now)
    .fetch_one(&mut conn)
    .await?;
    let size = if url.starts_with("postgres") {
        let (bytes,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&mut conn)
            .await?;
        Some(bytes)
    } else {
        None
    };
    conn.close().await?;
    Ok((count, size))
}

/// A database of the run's own on the PostgreSQL server at `admin` (dropped by
/// [`drop_database`]).
async fn create_database(admin: &str) -> anyhow::Result<(String, String)> {
    use sqlx::{Connection as _, Executor as _};
    sqlx::any::install_default_drivers();
    let name = format!("voxgate_scale_{}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(admin)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {admin}"))?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    Ok((name.clone(), format!("{base}/{name}")))
}

async fn drop_database(admin: &str, name: &str) {
    use sqlx::{Connection as _, Executor as _};
    if let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        let _ = conn.close().await;
    }
}

/// Confirms `challenge` with its right code (read first, untimed); returns how long the
/// confirm took and the approved challenge.
async fn confirm_timed(
    gate: &Gate,
    user: &User,
    challenge: &voxgate::gate::Challenge,
    actor: &Actor,
) -> anyhow::Result<(Duration, voxgate::gate::Challenge)> {
    let code = gate.current_code(challenge).await?.code;
    let started = Instant::now();
    let verdict = gate
        .confirm(user, Some(&challenge.id), &code, actor)
        .await?;
    let spent = started.elapsed();
    let Verdict::Approved(approved) = verdict else {
        bail!("the right code was not approved: {verdict:?}");
    };
    Ok((spent, approved))
}

/// Runs `work(i)` for `i` in `0..n`, starting one every `1/rate` seconds whatever is still
/// running (an open loop: a slow answer does not slow the offered load down).
async fn at_rate<T, F, Fut>(n: usize, rate: f64, work: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let start = Instant::now() + Duration::from_millis(20);
    let mut running = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        running.spawn(work(i));
    }
    let mut all = Vec::with_capacity(n);
    while let Some(joined) = running.join_next().await {
        all.push(joined.context("an operation panicked")??);
    }
    Ok(all)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(port) = args.serve_sts {
        return match serve_sts(port).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("scale: the STS stub failed: {error:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let started = if args.sts == "moto" {
        moto()
    } else {
        stub().map(|(url, server)| (url, Some(server)))
    };
    let (endpoint, server) = match started {
        Ok(found) => found,
        Err(error) => {
            eprintln!("scale: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server_pid = server.as_ref().map(|m| m.0.id());
    let database = match &args.database_url {
        Some(admin) => match create_database(admin).await {
            Ok(made) => Some(made),
            Err(error) => {
                eprintln!("scale: {error:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let outcome = run(
        &args,
        &endpoint,
        server_pid,
        database.as_ref().map(|(_, url)| url.as_str()),
    )
    .await;
    drop(server);
    if let (Some(admin), Some((name, _))) = (&args.database_url, &database) {
        drop_database(admin, name).await;
    }
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("scale: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Tenant `i`'s user and its linked account (the harness's copy, made at set-up).
type Speaker = (User, LinkedAccount);

/// Heap bytes of one harness entry: the two structs and every string and byte buffer in
/// them (allocator rounding not counted).
fn copy_bytes((user, account): &Speaker) -> usize {
    std::mem::size_of::<Speaker>()
        + user.id.as_str().len()
        + user.tenant_id.as_str().len()
        + user.name.len()
        + user.alexa_user_id.as_ref().map_or(0, String::len)
        + user.oauth_subject.as_ref().map_or(0, String::len)
        + account.id.as_str().len()
        + account.tenant_id.as_str().len()
        + account.name.len()
        + account.region.len()
        + account.role_arn.as_bytes().len()
        + account.external_id.as_bytes().len()
}

/// The run; `Ok(false)` if the STS check failed.
#[allow(clippy::too_many_lines)]
async fn run(
    args: &Args,
    endpoint: &str,
    server_pid: Option<u32>,
    postgres: Option<&str>,
) -> anyhow::Result<bool> {
    ensure!(args.tenants >= FRESH, "--tenants must be at least {FRESH}");
    ensure!(args.samples >= 1, "--samples must be at least 1");
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    ensure!(
        args.rates.iter().all(|r| r.is_finite() && *r > 0.0),
        "--rates must be positive numbers (operations per second), e.g. 100,500,1000"
    );
    let n = args.tenants;
    let samples = args.samples;
    let concurrency = args.concurrency;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let url = postgres.map_or_else(
        || format!("sqlite://{}", dir.path().join("voxgate.db").display()),
        str::to_owned,
    );
    let store_name = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "scale: {n} tenants, {samples} samples, {concurrency} in flight; store {store_name} \
         ({}); AWS {endpoint}",
        postgres.map_or_else(|| dir.path().display().to_string(), str::to_owned)
    );
    let moto = args.sts == "moto";
    let sts_name = if moto { "moto_server" } else { "STS stub" };
    let aws = if moto {
        moto_identity(endpoint).await?
    } else {
        sdk_config(endpoint, "testing", "testing")
    };
    let parts = Arc::new(parts(dir.path(), &url, aws).await?);
    let (rss_start, _) = memory_kib(None);

    // 1. Tenants, users, accounts (and the sample users and spare accounts). The harness
    // keeps what the store returned: looking a speaker up through the store is O(N) a call
    // at this scale (see step 5), which would make the run hours long.
    println!("1. creating {n} tenants, users and linked accounts");
    let t = Instant::now();
    let now = parts.clock.now().unix_timestamp();
    let region = AwsRegion::parse("eu-west-1")?;
    let prod = AccountName::parse("prod")?;
    let spare = AccountName::parse("spare")?;
    let mut speakers: Vec<Speaker> = Vec::with_capacity(n);
    let mut sample_speakers: Vec<Speaker> = Vec::with_capacity(samples);
    let mut spares: Vec<Speaker> = Vec::with_capacity(FRESH);
    for batch in (0..n).step_by(BATCH) {
        let mut tx = parts.store.begin().await?;
        for i in batch..(batch + BATCH).min(n) {
            let tenant = tx
                .add_tenant(&TenantName::parse(&format!("scale-{i:07}"))?, now)
                .await?;
            let user = tx
                .add_user(
                    &NewUser {
                        tenant_id: tenant.id.clone(),
                        name: UserName::parse(&format!("user-{i}"))?,
                        alexa_user_id: Some(AlexaUserId::parse(&tenant_alexa_id(i))?),
                        oauth_subject: None,
                    },
                    now,
                )
                .await?;
            let role = RoleArn::parse(&format!(
                "arn:aws:iam::{}:role/voxgate-access",
                aws_account(i)
            ))?;
            let (account, _) =
                voxgate::accounts::prepare(&parts.sealer, &tenant, &prod, &role, &region).await?;
            let account = tx.add_account(&account, now).await?;
            if i < samples {
                let sample = tx
                    .add_user(
                        &NewUser {
                            tenant_id: tenant.id.clone(),
                            name: UserName::parse(&format!("sample-{i}"))?,
                            alexa_user_id: Some(AlexaUserId::parse(&sample_alexa_id(i))?),
                            oauth_subject: None,
                        },
                        now,
                    )
                    .await?;
                sample_speakers.push((sample, account.clone()));
            }
            if i < FRESH {
                let role = RoleArn::parse(&format!(
                    "arn:aws:iam::{}:role/voxgate-access",
                    spare_aws_account(i)
                ))?;
                let (spare_account, _) =
                    voxgate::accounts::prepare(&parts.sealer, &tenant, &spare, &role, &region)
                        .await?;
                let spare_account = tx.add_account(&spare_account, now).await?;
                spares.push((user.clone(), spare_account));
            }
            speakers.push((user, account));
        }
        tx.commit().await?;
        if (batch / BATCH) % 40 == 39 {
            println!(
                "    setup: {}/{n} after {}",
                batch + BATCH,
                secs(t.elapsed())
            );
        }
    }
    // More samples than tenants: the extra sample users join the first tenants.
    for i in n..samples {
        let (_, account) = &speakers[i % n];
        let user = parts
            .store
            .add_user(
                &NewUser {
                    tenant_id: account.tenant_id.clone(),
                    name: UserName::parse(&format!("sample-{i}"))?,
                    alexa_user_id: Some(AlexaUserId::parse(&sample_alexa_id(i))?),
                    oauth_subject: None,
                },
                now,
            )
            .await?;
        sample_speakers.push((user, account.clone()));
    }
    let setup_time = t.elapsed();
    let (rss_setup, _) = memory_kib(None);
    println!(
        "   {n} tenants in {} ({:.0}/s); RSS {} (the harness's copy of the users and accounts \
         included)",
        secs(setup_time),
        n as f64 / setup_time.as_secs_f64(),
        mib(rss_setup)
    );
    let speakers = Arc::new(speakers);

    // 2. Warm the broker: one read session per account.
    println!(
        "2. warming the broker: {n} read sessions (list_instances_policy), STS: {sts_name} at \
         {endpoint}"
    );
    let policy = voxgate::ops::instances::list_instances_policy();
    let t = Instant::now();
    // moto answers a few hundred AssumeRole calls a second at best; a call left unanswered
    // past voxgate's timeouts is asked again, up to 5 times, and counted.
    let timed_out = Arc::new(AtomicUsize::new(0));
    let warm = {
        let (parts, policy, timed_out, speakers) = (
            Arc::clone(&parts),
            policy.clone(),
            Arc::clone(&timed_out),
            Arc::clone(&speakers),
        );
        in_parallel("warm", n, concurrency, move |i| {
            let (parts, policy, timed_out, speakers) = (
                Arc::clone(&parts),
                policy.clone(),
                Arc::clone(&timed_out),
                Arc::clone(&speakers),
            );
            async move {
                let (user, account) = &speakers[i];
                let mut tries = 0;
                loop {
                    let started = Instant::now();
                    match parts.broker.session(account, user, &policy).await {
                        Ok(_) => break anyhow::Ok(started.elapsed()),
                        Err(BrokerError::Unreachable(_)) if tries < 5 => {
                            tries += 1;
                            timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => break Err(error.into()),
                    }
                }
            }
        })
        .await?
    };
    let warm_time = t.elapsed();
    let timed_out = timed_out.load(Ordering::Relaxed);
    // Every call that went unanswered was an STS call too.
    let warm_sts = parts.broker.sts_calls() - timed_out as u64;
    let warm_summary = summary(warm);
    let (rss_warm, _) = memory_kib(None);
    println!(
        "   {n} sessions in {} ({:.0}/s), {warm_sts} STS calls answered ({timed_out} more timed \
         out and were asked again); session p50 {} p99 {}; RSS {}{}",
        secs(warm_time),
        n as f64 / warm_time.as_secs_f64(),
        ms(warm_summary.p50),
        ms(warm_summary.p99),
        mib(rss_warm),
        server_pid.map_or_else(String::new, |pid| format!(
            "; {sts_name} RSS {}",
            mib(memory_kib(Some(pid)).0)
        ))
    );
    let mut sts_ok = warm_sts == n as u64;

    // The STS check: warm accounts again, concurrently: all cached.
    let t = Instant::now();
    let before = parts.broker.sts_calls();
    let mut hits = Vec::with_capacity(WARM_CHECKED * CALLS_PER_ACCOUNT);
    for k in 0..WARM_CHECKED {
        let (user, account) = &speakers[k * n / WARM_CHECKED];
        hits.extend(together(&parts.broker, account, user, &policy, CALLS_PER_ACCOUNT).await?);
    }
    let warm_again = parts.broker.sts_calls() - before;
    let hit_summary = summary(hits);
    let warm_check_time = t.elapsed();
    println!(
        "   STS check, warm: {WARM_CHECKED} accounts x {CALLS_PER_ACCOUNT} concurrent calls: \
         {warm_again} STS calls (expected 0); cache hit p50 {} p99 {} max {} ({})",
        ms(hit_summary.p50),
        ms(hit_summary.p99),
        ms(hit_summary.max),
        secs(warm_check_time)
    );
    sts_ok &= warm_again == 0;
    // Never-warmed accounts, concurrently: one STS call each.
    let mut fresh_counts = Vec::with_capacity(FRESH);
    for (user, account) in &spares {
        let before = parts.broker.sts_calls();
        together(&parts.broker, account, user, &policy, CALLS_PER_ACCOUNT).await?;
        fresh_counts.push(parts.broker.sts_calls() - before);
    }
    let fresh_ok = fresh_counts.iter().all(|&c| c == 1);
    println!(
        "   STS check, fresh: {FRESH} accounts x {CALLS_PER_ACCOUNT} concurrent calls: {} STS \
         calls (expected {FRESH}, one each: {})",
        fresh_counts.iter().sum::<u64>(),
        if fresh_ok { "yes" } else { "NO" }
    );
    sts_ok &= fresh_ok;

    // 3. One pending challenge per user.
    println!("3. holding one challenge per user ({n}), {concurrency} in flight");
    let actor = Actor::AlexaSession("scale".to_owned());
    let t = Instant::now();
    let first_holds = {
        let (parts, actor, speakers) = (Arc::clone(&parts), actor.clone(), Arc::clone(&speakers));
        in_parallel("hold", n, concurrency, move |i| {
            let (parts, actor, speakers) =
                (Arc::clone(&parts), actor.clone(), Arc::clone(&speakers));
            async move {
                let (user, account) = &speakers[i];
                let started = Instant::now();
                parts
                    .gate
                    .hold(user, &stop_instance(account, i), &actor)
                    .await?;
                anyhow::Ok(started.elapsed())
            }
        })
        .await?
    };
    let hold_all_time = t.elapsed();
    let first_hold_summary = summary(first_holds);
    println!(
        "   {n} challenges held in {} ({:.0}/s); first hold of a user p50 {} p99 {}",
        secs(hold_all_time),
        n as f64 / hold_all_time.as_secs_f64(),
        ms(first_hold_summary.p50),
        ms(first_hold_summary.p99)
    );

    // 4. Memory and store size with N sessions cached and N challenges pending; first with
    // the harness's copy of the users and accounts, then without it.
    // Freed memory is not given back to the system at once (mimalloc keeps it), so the copy
    // is counted and taken off: its heap bytes, plus 1/8 for the allocator's size classes.
    let (rss_with_copy, hwm) = memory_kib(None);
    let copy_kib = (speakers.iter().map(copy_bytes).sum::<usize>() * 9 / 8 / 1024) as u64;
    let kept: Vec<Speaker> = (0..200).map(|k| speakers[k * n / 200].clone()).collect();
    drop(speakers);
    let rss = rss_with_copy.saturating_sub(copy_kib);
    let (pending, pg_bytes) = pending_now(&url, parts.clock.now().unix_timestamp()).await?;
    let (db_bytes, wal_bytes) = match pg_bytes {
        Some(bytes) => (u64::try_from(bytes).unwrap_or(0), 0),
        None => store_bytes(dir.path()),
    };
    let server_memory = server_pid.map(|pid| memory_kib(Some(pid)).0);
    println!(
        "4. with {pending} challenges pending and {n} sessions cached: VmRSS {}, VmHWM {} (both \
         with the harness's copy of the N users and accounts, {}); without it {}; store {:.1} \
         MB (+ WAL/shm {:.1} MB){}",
        mib(rss_with_copy),
        mib(hwm),
        mib(copy_kib),
        mib(rss),
        db_bytes as f64 / 1e6,
        wal_bytes as f64 / 1e6,
        server_memory.map_or_else(String::new, |kib| format!("; {sts_name} RSS {}", mib(kib)))
    );

    // 5. Holds and confirms with N pending. The sample users' keys are made first (a hold,
    // denied), as for anyone who has held an operation before.
    println!("5. {samples} holds and {samples} confirms with {n} pending, {concurrency} in flight");
    let samples_of = Arc::new(Samples {
        parts: Arc::clone(&parts),
        actor: actor.clone(),
        speakers: sample_speakers,
    });
    let t = Instant::now();
    {
        let samples_of = Arc::clone(&samples_of);
        in_parallel("sample keys", samples, concurrency, move |i| {
            let samples_of = Arc::clone(&samples_of);
            async move {
                let Samples {
                    parts,
                    actor,
                    speakers: sample_speakers,
                } = &*samples_of;
                let (user, account) = &sample_speakers[i];
                let held = parts
                    .gate
                    .hold(user, &stop_instance(account, n + i), actor)
                    .await?;
                parts.gate.deny(user, &held.id, actor).await?;
                anyhow::Ok(())
            }
        })
        .await?;
    }
    let keys_time = t.elapsed();
    let t = Instant::now();
    let held = {
        let samples_of = Arc::clone(&samples_of);
        in_parallel("measured holds", samples, concurrency, move |i| {
            let samples_of = Arc::clone(&samples_of);
            async move {
                let Samples {
                    parts,
                    actor,
                    speakers: sample_speakers,
                } = &*samples_of;
                let (user, account) = &sample_speakers[i];
                let operation = stop_instance(account, 2 * n + i);
                let started = Instant::now();
                let challenge = parts.gate.hold(user, &operation, actor).await?;
                let spent = started.elapsed();
                anyhow::Ok((spent, user.clone(), challenge))
            }
        })
        .await?
    };
    let holds_time = t.elapsed();
    let (hold_latencies, held): (Vec<_>, Vec<_>) =
        held.into_iter().map(|(d, u, c)| (d, (u, c))).unzip();
    let hold_summary = summary(hold_latencies);
    let held = Arc::new(held);
    let t = Instant::now();
    let confirmed = {
        let (parts, actor, held) = (Arc::clone(&parts), actor.clone(), Arc::clone(&held));
        in_parallel("measured confirms", samples, concurrency, move |i| {
            let (parts, actor, held) = (Arc::clone(&parts), actor.clone(), Arc::clone(&held));
            async move {
                let (user, challenge) = &held[i];
                confirm_timed(&parts.gate, user, challenge, &actor).await
            }
        })
        .await?
    };
    let confirms_time = t.elapsed();
    let (confirm_latencies, approved): (Vec<_>, Vec<_>) = confirmed.into_iter().unzip();
    let confirm_summary = summary(confirm_latencies);
    // The approvals are closed as executed (what the skill does after the AWS call).
    {
        let (parts, actor, approved) = (Arc::clone(&parts), actor.clone(), Arc::new(approved));
        in_parallel("finish", samples, concurrency, move |i| {
            let (parts, actor, approved) =
                (Arc::clone(&parts), actor.clone(), Arc::clone(&approved));
            async move {
                parts
                    .gate
                    .finish(&approved[i], Execution::Executed(None), &actor)
                    .await?;
                anyhow::Ok(())
            }
        })
        .await?;
    }
    println!(
        "   keys made in {}; {} holds in {}: p50 {} p99 {} max {}; {} confirms in {}: p50 {} \
         p99 {} max {}",
        secs(keys_time),
        hold_summary.count,
        secs(holds_time),
        ms(hold_summary.p50),
        ms(hold_summary.p99),
        ms(hold_summary.max),
        confirm_summary.count,
        secs(confirms_time),
        ms(confirm_summary.p50),
        ms(confirm_summary.p99),
        ms(confirm_summary.max)
    );
    // What every Alexa request does before anything else: find the speaker by Alexa user id
    // (identity) and load their tenant's accounts (the skill); one at a time.
    let mut lookups = Vec::with_capacity(kept.len());
    for (user, _) in &kept {
        let alexa_id = user.alexa_user_id.clone().unwrap_or_default();
        let started = Instant::now();
        let found = parts
            .store
            .user_by_alexa_id(&alexa_id)
            .await?
            .context("the speaker was not found")?;
        parts.store.accounts(Some(&found.tenant_id)).await?;
        lookups.push(started.elapsed());
    }
    let lookup_summary = summary(lookups);
    println!(
        "   a request's speaker lookup (user_by_alexa_id + accounts of the tenant), one at a \
         time: p50 {} p99 {} max {}",
        ms(lookup_summary.p50),
        ms(lookup_summary.p99),
        ms(lookup_summary.max)
    );

    // 5b. At a steady offered rate: operation i starts at i/rate s (in a task of its own,
    // whatever is still running); it holds, confirms with the right code and is finished.
    // The hold is timed from the task's start (the harness's timer is late by up to a
    // millisecond, which is not voxgate's), the confirm from its own start (right after its
    // hold). The sample users' earlier challenges are closed, so each may hold again.
    let mut steady = Vec::new();
    for (r, &rate) in args.rates.iter().enumerate() {
        let t = Instant::now();
        let timed = {
            let samples_of = Arc::clone(&samples_of);
            at_rate(samples, rate, move |i| {
                let samples_of = Arc::clone(&samples_of);
                async move {
                    let Samples {
                        parts,
                        actor,
                        speakers: sample_speakers,
                    } = &*samples_of;
                    let begun = Instant::now();
                    let (user, account) = &sample_speakers[i];
                    let operation = stop_instance(account, (4 + r) * n + i);
                    let challenge = parts.gate.hold(user, &operation, actor).await?;
                    let hold = begun.elapsed();
                    let (confirm, approved) =
                        confirm_timed(&parts.gate, user, &challenge, actor).await?;
                    parts
                        .gate
                        .finish(&approved, Execution::Executed(None), actor)
                        .await?;
                    anyhow::Ok((hold, confirm))
                }
            })
            .await?
        };
        let spent = t.elapsed();
        let (holds, confirms): (Vec<_>, Vec<_>) = timed.into_iter().unzip();
        let (holds, confirms) = (summary(holds), summary(confirms));
        println!(
            "5b. {samples} operations offered at {rate:.0}/s (hold, confirm, finish), done in {}: \
             hold p50 {} p99 {} max {}; confirm p50 {} p99 {} max {}",
            secs(spent),
            ms(holds.p50),
            ms(holds.p99),
            ms(holds.max),
            ms(confirms.p50),
            ms(confirms.p99),
            ms(confirms.max)
        );
        steady.push((rate, holds, confirms));
    }

    // 6. ~55 minutes, on the spare accounts with a second read policy (so their sessions are
    // new): one made with the clock 54 minutes back (one STS call each, 50 concurrent
    // calls), then asked at the real time, its age 54 minutes (cached: none), then at 56
    // minutes (refreshed: one each). The clock is moved per account, so the real seconds
    // in between do not count; moving it back (not forward) keeps voxgate's clock and
    // moto's expiry times in agreement.
    let other = voxgate::ops::alarms::read_policy();
    let (mut made, mut at_54, mut at_56) = (Vec::new(), Vec::new(), Vec::new());
    let t = Instant::now();
    for (user, account) in &spares {
        for (offset, counts) in [(-54, &mut made), (0, &mut at_54), (2, &mut at_56)] {
            parts
                .clock
                .set(OffsetDateTime::now_utc() + time::Duration::minutes(offset));
            let before = parts.broker.sts_calls();
            together(&parts.broker, account, user, &other, CALLS_PER_ACCOUNT).await?;
            counts.push(parts.broker.sts_calls() - before);
        }
    }
    parts.clock.set(OffsetDateTime::now_utc());
    let once = |counts: &[u64]| counts.iter().all(|&c| c == 1);
    let refresh_ok = once(&made) && at_54.iter().all(|&c| c == 0) && once(&at_56);
    println!(
        "6. {FRESH} spare accounts, alarms read policy, {CALLS_PER_ACCOUNT} concurrent calls each: \
         made {} STS calls (one each: {}); at 54 min {} (expected 0); at 56 min {} (one each: \
         {}) ({})",
        made.iter().sum::<u64>(),
        if once(&made) { "yes" } else { "NO" },
        at_54.iter().sum::<u64>(),
        at_56.iter().sum::<u64>(),
        if once(&at_56) { "yes" } else { "NO" },
        secs(t.elapsed())
    );
    sts_ok &= refresh_ok;
    // What STS saw (the stub counts every AssumeRole by account and policy): one call for
    // each pair, but two for the spare accounts' alarms sessions (the refresh at 56 min).
    let stub_seen = if moto {
        None
    } else {
        let [calls, pairs, repeated, max] = stub_counts(endpoint).await?;
        let expected_calls = (n + 3 * FRESH + timed_out) as u64;
        let seen_ok = (timed_out > 0 || calls == expected_calls)
            && pairs == (n + 2 * FRESH) as u64
            && repeated == FRESH as u64
            && max == 2;
        println!(
            "   STS side (the stub's counts): {calls} AssumeRole (expected {expected_calls}), \
             {pairs} account-and-policy pairs (expected {}), {repeated} asked twice (expected \
             {FRESH}), at most {max} for one pair (expected 2): {}",
            n + 2 * FRESH,
            if seen_ok {
                "as expected"
            } else {
                "NOT as expected"
            }
        );
        sts_ok &= seen_ok;
        Some((calls, pairs, repeated, max))
    };

    let total = started.elapsed();
    let goal = rss <= 200 * 1024;
    println!();
    println!(
        "scale: {n} tenants, {samples} samples, {concurrency} in flight, total {}",
        secs(total)
    );
    println!("phase                                          time        rate");
    let row = |name: &str, d: Duration, count: usize| {
        println!(
            "{name:<44} {:>8}  {:>7.0}/s",
            secs(d),
            count as f64 / d.as_secs_f64()
        );
    };
    row("1 tenants + user + account", setup_time, n);
    row(&format!("2 warm broker ({sts_name})"), warm_time, n);
    row(
        "2 STS check, warm (1000 x 50 calls)",
        warm_check_time,
        WARM_CHECKED * CALLS_PER_ACCOUNT,
    );
    row("3 hold 1 challenge per user", hold_all_time, n);
    row("5 sample keys (hold + deny)", keys_time, samples);
    row("5 holds, measured", holds_time, samples);
    row("5 confirms, measured", confirms_time, samples);
    println!();
    println!("latency ({concurrency} in flight)              p50        p99        max");
    let line = |name: &str, s: &Summary| {
        println!(
            "{name:<36} {:>10} {:>10} {:>10}",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    };
    line("hold, N pending", &hold_summary);
    line("confirm, N pending", &confirm_summary);
    line("first hold of a user (step 3)", &first_hold_summary);
    line("session, STS miss (step 2)", &warm_summary);
    line("session, cache hit, N cached (x50)", &hit_summary);
    line("speaker lookup (1 in flight)", &lookup_summary);
    for (rate, holds, confirms) in &steady {
        line(&format!("hold, offered {rate:.0}/s"), holds);
        line(&format!("confirm, offered {rate:.0}/s"), confirms);
    }
    println!();
    println!(
        "memory: VmRSS {} less the harness's copy ({}) = {}; VmHWM {}; VmRSS at start {}, \
         after setup {}, after warming {}",
        mib(rss_with_copy),
        mib(copy_kib),
        mib(rss),
        mib(hwm),
        mib(rss_start),
        mib(rss_setup),
        mib(rss_warm)
    );
    println!(
        "store ({store_name}): {:.1} MB (+ WAL/shm {:.1} MB), {pending} challenges pending",
        db_bytes as f64 / 1e6,
        wal_bytes as f64 / 1e6
    );
    println!(
        "STS: warming {warm_sts} calls for {n} accounts ({timed_out} timed out, asked again); \
         {WARM_CHECKED} warm x {CALLS_PER_ACCOUNT}: {warm_again}; {FRESH} fresh x \
         {CALLS_PER_ACCOUNT}: {}; age 54 min: {}; age 56 min: {} -> {}",
        fresh_counts.iter().sum::<u64>(),
        at_54.iter().sum::<u64>(),
        at_56.iter().sum::<u64>(),
        if sts_ok {
            "at most one per account and policy: held"
        } else {
            "VIOLATED"
        }
    );
    if let Some((calls, pairs, repeated, max)) = stub_seen {
        println!(
            "STS side: {calls} AssumeRole for {pairs} account-and-policy pairs; {repeated} pairs \
             asked twice (the 56-minute refreshes), none more (max {max})"
        );
    }
    println!(
        "goal RSS <= 200 MB: {} ({} without the harness's copy; {} with it: {})",
        if goal { "met" } else { "not met" },
        mib(rss),
        mib(rss_with_copy),
        if rss_with_copy <= 200 * 1024 {
            "met"
        } else {
            "not met"
        }
    );
    Ok(sts_ok)
}
