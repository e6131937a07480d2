//! The soak driver (`scripts/soak` builds and runs it): mixed traffic at a steady rate
//! against a running `voxgate serve` that verifies every request (signed with a development
//! CA, `voxgate dev-ca init`), for a few minutes, watching the server process.
//!
//! It seeds two managed instances (web-1, web-2) in the moto account, pairs companion
//! devices (`voxgate pair --user NAME --json`, then the pairing endpoint, as the app does)
//! and keeps one live event stream open per device for the whole run. Then, for `--seconds`:
//! `--rate` signed `ListInstancesIntent` requests a second, and every `--changes-every`
//! seconds one critical operation (Stop, then Start, … on web-1) held for its code, the code
//! read from the companion API and said back as `VerifyCodeIntent`. Every answer must be 200
//! with the expected speech. Every 10 s it prints a line: elapsed, requests, errors, p50/p99
//! of reads and of confirms, the server's RSS and open files, companion events received.
//!
//! It exits non-zero if any request failed, the server's RSS at the end exceeds RSS after
//! the first minute (or the first third of a shorter run) by more than 10% + 5 MB, its open
//! files (less inbound client connections) grew by more than 5 over the same span, or a
//! companion stream missed an event (each confirmed operation must reach every stream as
//! `created`, `confirmed` and `executed`).
//!
//! Usage: `soak --url URL --pid PID --ca-dir DIR --skill-id ID --alexa-user-id ID
//! --moto-url URL --account ID --voxgate BIN --user NAME [--devices 2] [--seconds 180]
//! [--rate 50] [--changes-every 2]`, in the directory and environment `voxgate serve` runs
//! in (for `voxgate pair`).
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "voxgate soak driver (run by scripts/soak)")]
struct Args {
    /// voxgate's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The `voxgate serve` process (its RSS and open files are sampled).
    #[arg(long)]
    pid: u32,
    /// The development CA (`voxgate dev-ca init DIR`) that signs the requests.
    #[arg(long)]
    ca_dir: PathBuf,
    /// The skill id voxgate accepts.
    #[arg(long)]
    skill_id: String,
    /// The Alexa user id of the enrolled user.
    #[arg(long)]
    alexa_user_id: String,
    /// moto_server's URL.
    #[arg(long)]
    moto_url: String,
    /// The linked AWS account (in moto).
    #[arg(long)]
    account: String,
    /// The region of the linked account.
    #[arg(long, default_value = "eu-west-1")]
    region: String,
    /// The `voxgate` binary (for `voxgate pair`, run in this directory and environment).
    #[arg(long)]
    voxgate: PathBuf,
    /// The enrolled user's name.
    #[arg(long)]
    user: String,
    /// Companion devices to pair, each with one live event stream.
    #[arg(long, default_value_t = 2)]
    devices: usize,
    /// How long to send traffic, in seconds.
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Read requests a second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Seconds between critical operations.
    #[arg(long, default_value_t = 2)]
    changes_every: u64,
}

/// Samples are taken this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// An answer slower than this is a failure (Alexa waits 8 s).
const ALEXA_WAITS: Duration = Duration::from_secs(8);
/// Failures printed in full (all are counted).
const SHOWN_FAILURES: u64 = 20;

/// Latencies (microseconds), for the current sample and the whole run.
#[derive(Default)]
struct Latencies {
    window: Vec<u64>,
    all: Vec<u64>,
}

impl Latencies {
    fn add(&mut self, micros: u64) {
        self.window.push(micros);
        self.all.push(micros);
    }
}

fn percentile(values: &[u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(micros: Option<u64>) -> String {
    micros.map_or_else(|| "-".to_owned(), |m| format!("{:.1}ms", m as f64 / 1000.0))
}

/// One companion stream's view: the change events it received, by challenge and kind.
#[derive(Default)]
struct StreamSeen {
    kinds: BTreeMap<String, u64>,
    changes: HashSet<(String, String)>,
    /// Set if the stream ended or failed during the run.
    broken: Option<String>,
}

struct Shared {
    args: Args,
    http: reqwest::Client,
    signer: voxgate::devca::Signer,
    run: String,
    counter: AtomicU64,
    reads: AtomicU64,
    changes: AtomicU64,
    errors: AtomicU64,
    read_latency: Mutex<Latencies>,
    confirm_latency: Mutex<Latencies>,
    /// Challenges held and confirmed ("Stopping web-1 now." heard).
    confirmed: Mutex<Vec<String>>,
    streams: Vec<Mutex<StreamSeen>>,
}

impl Shared {
    fn fail(&self, what: &str, detail: String) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= SHOWN_FAILURES {
            eprintln!("FAILED {what}: {detail}");
        } else if n == SHOWN_FAILURES + 1 {
            eprintln!("(further failures are counted, not shown)");
        }
    }

    fn request_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("amzn1.echo-api.request.soak-{}-{n}", self.run)
    }

    /// An `IntentRequest` as Alexa sends it, timestamped now.
    fn intent(
        &self,
        session: &str,
        new: bool,
        intent: &str,
        slots: &[(&str, &str)],
        attributes: Value,
    ) -> Value {
        let user = &self.args.alexa_user_id;
        let skill = &self.args.skill_id;
        let mut slot_map = serde_json::Map::new();
        for (name, value) in slots {
            slot_map.insert(
                (*name).to_owned(),
                json!({"name": name, "value": value, "confirmationStatus": "NONE"}),
            );
        }
        let timestamp = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        json!({
            "version": "1.0",
            "session": {
                "new": new,
                "sessionId": format!("amzn1.echo-api.session.soak-{}-{session}", self.run),
                "application": {"applicationId": skill},
                "attributes": attributes,
                "user": {"userId": user}
            },
            "context": {"System": {
                "application": {"applicationId": skill},
                "user": {"userId": user},
                "device": {"deviceId": "amzn1.ask.device.SOAK", "supportedInterfaces": {}},
                "apiEndpoint": "https://api.amazonalexa.com"
            }},
            "request": {
                "type": "IntentRequest",
                "requestId": self.request_id(),
                "locale": "en-US",
                "timestamp": timestamp,
                "intent": {"name": intent, "confirmationStatus": "NONE", "slots": slot_map}
            }
        })
    }

    /// Sends `body` signed to /alexa: the answer, or why it is not a 200 JSON answer in time.
    async fn say(&self, body: &Value) -> Result<(Value, Duration), String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let [(h1, v1), (h2, v2)] = self.signer.headers(&bytes).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let send = async {
            let response = self
                .http
                .post(format!("{}/alexa", self.args.url))
                .header("content-type", "application/json")
                .header(h1, v1)
                .header(h2, v2)
                .body(bytes)
                .send()
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| format!("answer cut: {e}"))?;
            if status != reqwest::StatusCode::OK {
                return Err(format!("HTTP {status}: {text}"));
            }
            serde_json::from_str::<Value>(&text).map_err(|e| format!("not JSON ({e}): {text}"))
        };
        match tokio::time::timeout(ALEXA_WAITS, send).await {
            Ok(Ok(answer)) => Ok((answer, started.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {ALEXA_WAITS:?}")),
        }
    }
}

fn speech(answer: &Value) -> String {
    let speech = &answer["response"]["outputSpeech"];
    speech["text"]
        .as_str()
        .or_else(|| speech["ssml"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One read: "what's running", which must name web-1.
async fn read(shared: Arc<Shared>, n: u64) {
    let body = shared.intent(
        &format!("read-{n}"),
        true,
        "ListInstancesIntent",
        &[],
        json!({}),
    );
    match shared.say(&body).await {
        Ok((answer, took)) => {
            let said = speech(&answer);
            if said.contains("web-1") {
                shared
                    .read_latency
                    .lock()
                    .expect("latencies")
                    .add(micros(took));
            } else {
                shared.fail(
                    "ListInstancesIntent",
                    format!("unexpected speech: {answer}"),
                );
            }
        }
        Err(e) => shared.fail("ListInstancesIntent", e),
    }
}

/// The code as Alexa hears it: AMAZON.NUMBER drops leading zeros ("081804" arrives as
/// "81804"); a code with three or more ("000123") is said digit by digit.
fn spoken(code: &str) -> &str {
    let trimmed = code.trim_start_matches('0');
    if code.len() == 6 && trimmed.len() >= 4 {
        trimmed
    } else {
        code
    }
}

/// One critical operation: held, its code read from the companion API, said back.
async fn change(shared: &Shared, token: &str, n: u64) -> Result<(), String> {
    let (intent, verb) = if n.is_multiple_of(2) {
        ("StopInstanceIntent", "Stopping")
    } else {
        ("StartInstanceIntent", "Starting")
    };
    let session = format!("change-{n}");
    let asked = shared.intent(&session, true, intent, &[("instance", "web-1")], json!({}));
    let (held, _) = shared.say(&asked).await?;
    let said = speech(&held);
    let Some(id) = held["sessionAttributes"]["challengeId"].as_str() else {
        return Err(format!("{intent}: not held for a code: {held}"));
    };
    if !said.contains("code") {
        return Err(format!(
            "{intent}: held without asking for the code: {said}"
        ));
    }
    let shown: Value = shared
        .http
        .get(format!("{}/api/v1/companion/challenges", shared.args.url))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("companion challenges: {e}"))?
        .error_for_status()
        .map_err(|e| format!("companion challenges: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("companion challenges: {e}"))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("companion challenges: {e}"))
        })?;
    let Some(code) = shown["challenges"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["id"] == id))
        .and_then(|c| c["code"].as_str())
    else {
        return Err(format!("the companion app does not show {id}: {shown}"));
    };
    let answer = shared.intent(
        &session,
        false,
        "VerifyCodeIntent",
        &[("code", spoken(code))],
        json!({"challengeId": id}),
    );
    let (done, took) = shared.say(&answer).await?;
    let expected = format!("{verb} web-1 now.");
    if speech(&done) != expected {
        return Err(format!(
            "code for {id}: expected \"{expected}\", got {done}"
        ));
    }
    shared
        .confirm_latency
        .lock()
        .expect("latencies")
        .add(micros(took));
    shared
        .confirmed
        .lock()
        .expect("confirmed")
        .push(id.to_owned());
    Ok(())
}

/// Pairs one companion device as its owner would: a pairing code from the operator
/// (`voxgate pair`, run here with this process's directory and environment), sent to the
/// pairing endpoint. Each new code replaces the user's previous one, so one at a time.
async fn pair(http: &reqwest::Client, args: &Args) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(&args.voxgate)
        .args(["pair", "--user", &args.user, "--json"])
        .output()
        .await
        .with_context(|| format!("running {}", args.voxgate.display()))?;
    if !out.status.success() {
        bail!(
            "voxgate pair failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let issued: Value = serde_json::from_slice(&out.stdout)?;
    let code = issued["code"]
        .as_str()
        .with_context(|| format!("no code in {issued}"))?;
    let response = http
        .post(format!("{}/api/v1/companion/pair", args.url))
        .header("content-type", "application/json")
        .body(json!({"code": code}).to_string())
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if status != reqwest::StatusCode::OK {
        bail!("pairing answered HTTP {status}: {text}");
    }
    let paired: Value = serde_json::from_str(&text)?;
    Ok(paired["token"]
        .as_str()
        .with_context(|| format!("no token in {paired}"))?
        .to_owned())
}

/// Reads one companion event stream until the run ends, recording what it receives.
async fn watch(shared: Arc<Shared>, index: usize, token: String) {
    let seen = &shared.streams[index];
    let response = match shared
        .http
        .get(format!("{}/api/v1/companion/events", shared.args.url))
        .bearer_auth(&token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
    {
        Ok(response) => response,
        Err(e) => {
            seen.lock().expect("stream").broken = Some(format!("could not open: {e}"));
            return;
        }
    };
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut event = String::new();
    let mut data = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                seen.lock().expect("stream").broken = Some(format!("failed: {e}"));
                return;
            }
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line = buffer[..end].trim_end_matches('\r').to_owned();
            buffer.drain(..=end);
            if line.is_empty() {
                if !event.is_empty() {
                    let mut s = seen.lock().expect("stream");
                    *s.kinds.entry(event.clone()).or_default() += 1;
                    if event != "challenges"
                        && let Ok(v) = serde_json::from_str::<Value>(&data)
                        && let Some(id) = v["challenge_id"].as_str()
                    {
                        s.changes.insert((id.to_owned(), event.clone()));
                    }
                }
                event.clear();
                data.clear();
            } else if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
    }
    seen.lock().expect("stream").broken = Some("ended by the server".to_owned());
}

/// The server process's resident memory (kB) and open files.
fn sample_process(pid: u32) -> anyhow::Result<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("voxgate (pid {pid}) is gone"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((rss, fds))
}

/// Open inbound connections to `port` (ESTABLISHED or CLOSE_WAIT: each holds a server fd).
fn inbound_connections(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && (*state == "01" || *state == "08") {
                n += 1;
            }
        }
    }
    n
}

#[derive(Clone, Copy)]
struct Sample {
    rss_kb: u64,
    fds: usize,
    inbound: usize,
}

impl Sample {
    fn take(pid: u32, port: u16) -> anyhow::Result<Self> {
        let (rss_kb, fds) = sample_process(pid)?;
        Ok(Self {
            rss_kb,
            fds,
            inbound: inbound_connections(port),
        })
    }

    /// Open files other than inbound client connections.
    fn own_fds(&self) -> i64 {
        self.fds as i64 - self.inbound as i64
    }

    fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }
}

fn events_received(shared: &Shared) -> String {
    shared
        .streams
        .iter()
        .map(|s| {
            let s = s.lock().expect("stream");
            s.kinds.values().sum::<u64>().to_string()
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// The machine's load average over the last minute (other work skews the latencies).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

fn print_line(shared: &Shared, elapsed: Duration, sample: &Sample) {
    let (r50, r99) = {
        let mut l = shared.read_latency.lock().expect("latencies");
        let p = (percentile(&l.window, 50.0), percentile(&l.window, 99.0));
        l.window.clear();
        p
    };
    let (c50, c99) = {
        let mut l = shared.confirm_latency.lock().expect("latencies");
        let p = (percentile(&l.window, 50.0), percentile(&l.window, 99.0));
        l.window.clear();
        p
    };
    println!(
        "{:>5.0}s  reads {:>6}  changes {:>4}  errors {:>3}  read p50 {:>7} p99 {:>7}  confirm p50 {:>7} p99 {:>7}  RSS {:>6.1} MB  fds {:>3} (inbound {:>2})  events {}  load {}",
        elapsed.as_secs_f64(),
        shared.reads.load(Ordering::Relaxed),
        shared.changes.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
        ms(r50),
        ms(r99),
        ms(c50),
        ms(c99),
        sample.rss_mb(),
        sample.fds,
        sample.inbound,
        events_received(shared),
        load_average(),
    );
}

async fn seed(args: &Args) -> anyhow::Result<()> {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
    // Credentials in the customer's account, as moto's multi-account mode hands them out
    // for any role assumed there.
    let base = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(args.region.clone()))
        .endpoint_url(&args.moto_url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "soak",
        )))
        .build();
    let assumed = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{}:role/soak-seeder", args.account))
        .role_session_name("soak-seeder")
        .send()
        .await
        .context("moto: AssumeRole")?;
    let c = assumed.credentials().context("no credentials")?;
    let config = aws_sdk_ec2::config::Builder::from(&base)
        .credentials_provider(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "soak-seeder",
        ))
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(config);
    for name in ["web-1", "web-2"] {
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("Name").value(name).build())
            .tags(Tag::builder().key("voxgate:managed").value("true").build())
            .build();
        ec2.run_instances()
            .image_id("ami-12345678")
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .tag_specifications(spec)
            .send()
            .await
            .with_context(|| format!("moto: RunInstances {name}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate == 0 || args.seconds == 0 || args.changes_every == 0 {
        bail!("--seconds, --rate and --changes-every must be at least 1");
    }
    let port = url::Url::parse(&args.url)?
        .port_or_known_default()
        .context("no port in --url")?;
    seed(&args).await?;
    println!(
        "seeded web-1 and web-2 (managed) in account {}",
        args.account
    );

    let signer = voxgate::devca::Signer::load(&args.ca_dir)?;
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?;
    let mut tokens = Vec::new();
    for _ in 0..args.devices.max(1) {
        tokens.push(pair(&http, &args).await?);
    }
    println!("paired {} companion device(s)", tokens.len());
    let shared = Arc::new(Shared {
        streams: tokens.iter().map(|_| Mutex::default()).collect(),
        args,
        http,
        signer,
        run: std::process::id().to_string(),
        counter: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        changes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        read_latency: Mutex::default(),
        confirm_latency: Mutex::default(),
        confirmed: Mutex::default(),
    });
    let watchers: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| tokio::spawn(watch(Arc::clone(&shared), i, t.clone())))
        .collect();
    // Each stream first sends the pending list; wait for it so nothing is missed.
    let opened = Instant::now();
    while shared
        .streams
        .iter()
        .any(|s| s.lock().expect("stream").kinds.is_empty())
    {
        if opened.elapsed() > Duration::from_secs(10) {
            bail!("a companion event stream sent nothing within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let seconds = shared.args.seconds;
    let baseline_at = Duration::from_secs(60.min(seconds / 3).max(1));
    let first = Sample::take(shared.args.pid, port)?;
    println!(
        "soak: {} s, {} reads/s, a change every {} s, {} companion stream(s); baseline: the first sample after {} s",
        seconds,
        shared.args.rate,
        shared.args.changes_every,
        tokens.len(),
        baseline_at.as_secs()
    );
    println!(
        "{:>5}s  RSS {:>6.1} MB  fds {:>3} (inbound {:>2})  (before the run)",
        0,
        first.rss_mb(),
        first.fds,
        first.inbound
    );

    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);

    // Reads: open loop, one every 1/rate s, each on its own task.
    let reader = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / shared.args.rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            let mut n = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                shared.reads.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(read(Arc::clone(&shared), n));
                n += 1;
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
    });
    // Changes: one at a time, every changes_every s.
    let changer = tokio::spawn({
        let shared = Arc::clone(&shared);
        let token = tokens[0].clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(shared.args.changes_every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                shared.changes.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = change(&shared, &token, n).await {
                    shared.fail("critical operation", e);
                }
                n += 1;
            }
        }
    });

    let mut baseline: Option<(Sample, u64)> = None;
    let mut samples =
        tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    let mut process_gone = None;
    while Instant::now() + Duration::from_millis(500) < end {
        samples.tick().await;
        if Instant::now() >= end {
            break;
        }
        match Sample::take(shared.args.pid, port) {
            Ok(sample) => {
                if baseline.is_none() && start.elapsed() >= baseline_at {
                    baseline = Some((sample, start.elapsed().as_secs_f64().round() as u64));
                }
                print_line(&shared, start.elapsed(), &sample);
            }
            Err(e) => {
                process_gone = Some(e);
                break;
            }
        }
    }
    reader.await?;
    changer.await?;
    let elapsed = start.elapsed();

    // The last events of the last change may still be on their way.
    let confirmed = shared.confirmed.lock().expect("confirmed").clone();
    let expected: Vec<(String, String)> = confirmed
        .iter()
        .flat_map(|id| {
            ["created", "confirmed", "executed"].map(|kind| (id.clone(), kind.to_owned()))
        })
        .collect();
    let missing = |shared: &Shared| -> Vec<(usize, String, String)> {
        let mut missing = Vec::new();
        for (i, s) in shared.streams.iter().enumerate() {
            let s = s.lock().expect("stream");
            for (id, kind) in &expected {
                if !s.changes.contains(&(id.clone(), kind.clone())) {
                    missing.push((i, id.clone(), kind.clone()));
                }
            }
        }
        missing
    };
    let waited = Instant::now();
    while !missing(&shared).is_empty() && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = missing(&shared);

    let last = match process_gone {
        Some(e) => Err(e),
        None => Sample::take(shared.args.pid, port),
    };
    let mut failures = Vec::new();
    let summary_sample = match last {
        Ok(sample) => {
            print_line(&shared, elapsed, &sample);
            Some(sample)
        }
        Err(e) => {
            failures.push(format!("the server process: {e}"));
            None
        }
    };
    for w in &watchers {
        w.abort();
    }

    let reads = shared.reads.load(Ordering::Relaxed);
    let changes = shared.changes.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let all_reads = shared.read_latency.lock().expect("latencies").all.clone();
    let all_confirms = shared
        .confirm_latency
        .lock()
        .expect("latencies")
        .all
        .clone();
    println!();
    println!("summary");
    println!(
        "  requests      {} reads ({:.1}/s), {} critical operations held and confirmed of {} started ({} requests to /alexa in all), {} failed",
        reads,
        reads as f64 / elapsed.as_secs_f64(),
        confirmed.len(),
        changes,
        reads + 2 * changes,
        errors
    );
    println!(
        "  reads         p50 {}  p99 {}  max {}",
        ms(percentile(&all_reads, 50.0)),
        ms(percentile(&all_reads, 99.0)),
        ms(all_reads.iter().max().copied())
    );
    println!(
        "  confirms      p50 {}  p99 {}  max {}",
        ms(percentile(&all_confirms, 50.0)),
        ms(percentile(&all_confirms, 99.0)),
        ms(all_confirms.iter().max().copied())
    );
    if errors > 0 {
        failures.push(format!(
            "{errors} request(s) failed (see FAILED lines above)"
        ));
    }
    if confirmed.is_empty() {
        failures.push("no critical operation was confirmed".to_owned());
    }
    match (baseline, summary_sample) {
        (Some((base, base_at)), Some(last)) => {
            let limit_kb = base.rss_kb + base.rss_kb / 10 + 5 * 1024;
            println!(
                "  memory        RSS {:.1} MB before, {:.1} MB at {} s, {:.1} MB at the end (limit {:.1} MB)",
                first.rss_mb(),
                base.rss_mb(),
                base_at,
                last.rss_mb(),
                limit_kb as f64 / 1024.0
            );
            println!(
                "  open files    {} before, {} at {} s, {} at the end; less inbound connections {} / {} / {} (growth allowed: 5)",
                first.fds,
                base.fds,
                base_at,
                last.fds,
                first.own_fds(),
                base.own_fds(),
                last.own_fds()
            );
            if last.rss_kb > limit_kb {
                failures.push(format!(
                    "RSS grew from {:.1} MB to {:.1} MB (limit {:.1} MB)",
                    base.rss_mb(),
                    last.rss_mb(),
                    limit_kb as f64 / 1024.0
                ));
            }
            if last.own_fds() > base.own_fds() + 5 {
                failures.push(format!(
                    "open files (less inbound connections) grew from {} to {}",
                    base.own_fds(),
                    last.own_fds()
                ));
            }
        }
        (None, Some(_)) => failures.push("no baseline sample was taken".to_owned()),
        _ => {}
    }
    for (i, s) in shared.streams.iter().enumerate() {
        let s = s.lock().expect("stream");
        let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  stream {}      {} events: {}",
            i + 1,
            s.kinds.values().sum::<u64>(),
            kinds.join(", ")
        );
        if let Some(why) = &s.broken {
            failures.push(format!("companion stream {} {why}", i + 1));
        }
        for kind in s.kinds.keys() {
            if !matches!(
                kind.as_str(),
                "challenges" | "created" | "confirmed" | "executed"
            ) {
                failures.push(format!(
                    "companion stream {} received unexpected '{kind}' events",
                    i + 1
                ));
            }
        }
    }
    println!(
        "  expected      {} change events per stream (created, confirmed, executed for each of {} confirmed operations)",
        expected.len(),
        confirmed.len()
    );
    if !missing.is_empty() {
        for (i, id, kind) in missing.iter().take(10) {
            eprintln!("MISSED stream {}: '{kind}' of {id}", i + 1);
        }
        failures.push(format!(
            "companion streams missed {} event(s)",
            missing.len()
        ));
    }
    if failures.is_empty() {
        println!("\nsoak: passed");
        Ok(())
    } else {
        for f in &failures {
            eprintln!("soak: FAILED: {f}");
        }
        std::process::exit(1);
    }
}
