//! The HTTP service: builds the axum router and the shared state, binds, and serves with
//! graceful shutdown. This module (and its children) is the only place that turns outcomes
//! into status codes.

mod alexa_endpoint;
pub mod check;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::alexa::chain::ChainStore;
use crate::alexa::verify::{Mode, RequestVerifier};
use crate::clock::Clock;
use crate::cloud::broker::Broker;
use crate::config::{Settings, Verification};
use crate::identity::{Identity, TokenVerifier};
use crate::skill::Skill;
use crate::store::Store;

/// What the service is given rather than reads itself: the clock and the AWS SDK settings
/// (voxgate's own identity, region and endpoint). Tests pass their own.
#[derive(Clone)]
pub struct Runtime {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// AWS SDK configuration for voxgate's own calls (STS, KMS).
    pub aws: aws_config::SdkConfig,
}

/// Largest `/alexa` body accepted; Alexa's requests are a few KiB.
pub const MAX_ALEXA_BODY_BYTES: usize = 128 * 1024;

/// Largest companion API body accepted (a pairing code, a deny): 4 KiB.
const COMPANION_BODY_LIMIT: usize = 4 * 1024;

/// What every handler shares (behind one `Arc`: one count to change per request, not one per
/// field). Built per app, so two apps can run side by side in a test.
pub(crate) struct AppState {
    pub(crate) verifier: Arc<RequestVerifier>,
    pub(crate) skill: Arc<Skill>,
    /// Time a client has to send a whole body.
    pub(crate) body_timeout: std::time::Duration,
    /// Requests handled to the end on tasks of their own; a graceful stop waits for them.
    pub(crate) tasks: Running,
    /// `/alexa` requests in flight (at most `--max-requests`): one beyond the cap is answered
    /// 503 at once instead of queueing behind the others (Alexa retries elsewhere; a flood
    /// does not build a backlog).
    pub(crate) in_flight: tokio::sync::Semaphore,
}

/// Tasks that must run to the end: each holds a share of the lock while it runs, and
/// [`Running::all_done`] takes the whole lock, so it waits for every one of them.
#[derive(Clone, Default)]
pub(crate) struct Running(Arc<tokio::sync::RwLock<()>>);

impl Running {
    /// Runs `task` on a task of its own, counted until it ends.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        // Taken before the task starts, so a stop that begins now still waits for it.
        let share = Arc::clone(&self.0).try_read_owned().ok();
        tokio::spawn(async move {
            let output = task.await;
            drop(share);
            output
        })
    }

    /// Resolves once every task spawned so far has ended.
    pub(crate) async fn all_done(&self) {
        let _ = self.0.write().await;
    }
}

/// A bound, ready-to-serve voxgate.
pub struct App {
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Requests running on tasks of their own (see [`AppState::tasks`]).
    tasks: Running,
    listener: TcpListener,
    router: Router,
    store: Arc<dyn Store>,
    broker: Arc<Broker>,
    gate: Arc<crate::gate::Gate>,
    checkpoints: Arc<crate::audit::checkpoint::Checkpoints>,
    limits: crate::config::HttpLimits,
    verifier: Arc<RequestVerifier>,
    /// Where /metrics is served on its own, if configured.
    metrics_listener: Option<TcpListener>,
    /// Held while serving from a store only one process may serve (SQLite).
    _claim: Option<crate::store::ServingClaim>,
}

impl App {
    /// Builds the service from settings and binds its listener (port 0 picks a free port).
    pub async fn build(settings: Settings, runtime: Runtime) -> anyhow::Result<Self> {
        let Runtime { clock, aws } = runtime;
        let store = crate::store::connect(&settings.database_url).await?;
        // SQLite is served by one process (its replay guard lives in memory).
        let claim = store.claim_for_serving().await?;
        if let crate::config::Sealing::LocalKeyFile(path) = &settings.sealing {
            warn!(
                key_file = %path.display(),
                "SECRETS ARE SEALED WITH A LOCAL KEY FILE: this is for development only; set \
                 --kms-key-id (VOXGATE_KMS_KEY_ID) to seal with AWS KMS"
            );
        }
        let sealer = Arc::new(crate::cloud::sealer(&settings.sealing, &aws)?);
        let broker = Arc::new(
            Broker::new(
                aws,
                Arc::clone(&sealer),
                Arc::clone(&clock),
                settings.session_duration,
            )?
            .with_capacity(settings.cached_sessions),
        );
        let tokens = settings
            .oauth
            .clone()
            .map(|oauth| TokenVerifier::new(oauth, Arc::clone(&clock)));
        let identity = Identity::new(Arc::clone(&store), tokens);
        let chain_key = crate::audit::ChainKey::load(store.as_ref(), &sealer).await?;
        // A database that lost its newest audit records (or was rewritten) is not served
        // from as if nothing happened.
        crate::audit::checkpoint::check_store(
            store.as_ref(),
            &settings.audit_checkpoint_file,
            &chain_key,
        )
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "{error}. voxgate will not serve from this database: find out what happened \
                 (voxgate audit verify); if the database was deliberately restored from a \
                 backup, move the checkpoint file aside to start a new record"
            )
        })?;
        let checkpoints = Arc::new(crate::audit::checkpoint::Checkpoints::open(
            &settings.audit_checkpoint_file,
            &chain_key,
        )?);
        let gate = Arc::new(crate::gate::Gate::new(
            Arc::clone(&store),
            Arc::clone(&sealer),
            crate::audit::AuditLog::new(Arc::clone(&store), chain_key)
                .with_checkpoints(Arc::clone(&checkpoints)),
            Arc::clone(&clock),
            settings.challenge_ttl,
        ));
        // On a store only this process serves, an approval still open was interrupted
        // by the last stop: it is reported as such before the first request.
        if !store.shared() {
            let closed = gate.close_interrupted().await?;
            if closed > 0 {
                warn!(
                    closed,
                    "approved operations were interrupted when voxgate last stopped; they are \
                     recorded as outcome-unknown (check their resources; none is retried)"
                );
            }
        }
        let mode = match settings.verification {
            Verification::Enforce { roots, source } => {
                Mode::Enforce(Box::new(ChainStore::new(roots, source)?))
            }
            Verification::InsecureSkip => {
                warn!(
                    "request verification is OFF (--insecure-skip-verification): anyone who can \
                     reach {} can act as Alexa; use this only with local test tools",
                    settings.listen
                );
                Mode::InsecureSkip
            }
        };
        let skill_ids = settings
            .skill_ids
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        let ledger = crate::store::replay_ledger(Arc::clone(&store), clock.now()).await?;
        let verifier =
            Arc::new(RequestVerifier::new(mode, skill_ids, Arc::clone(&clock)).with_ledger(ledger));
        let tasks = Running::default();
        let state = AppState {
            verifier: Arc::clone(&verifier),
            skill: Arc::new(
                Skill::new(
                    Arc::clone(&store),
                    identity,
                    Arc::clone(&broker),
                    Arc::clone(&gate),
                    settings.managed_tag.clone(),
                )
                .with_snapshot_age_days(settings.cleanup_snapshot_age_days)
                .with_key_age_days(settings.security_key_age_days),
            ),
            body_timeout: settings.http.body_timeout,
            tasks: tasks.clone(),
            in_flight: tokio::sync::Semaphore::new(settings.http.max_requests),
        };
        let (shutdown, shutdown_seen) = tokio::sync::watch::channel(false);
        let companion = crate::companion::api::router(crate::companion::api::CompanionState {
            store: Arc::clone(&store),
            gate: Arc::clone(&gate),
            shutdown: shutdown_seen,
            pairing_key: crate::companion::PairingKey::load(store.as_ref(), &sealer).await?,
            pairing_limiter: Arc::new(crate::companion::limit::PairingLimiter::default()),
            streams: Arc::new(tokio::sync::Semaphore::new(
                crate::companion::api::MAX_STREAMS,
            )),
        });
        // The cap on requests in flight is taken in the handler ([`AppState::in_flight`]):
        // as tower layers (load shedding over a concurrency limit) it cost every request a
        // boxed future, made when the route's service is cloned for it.
        let alexa = post(alexa_endpoint::handle);
        let probes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(Probes {
                store: Arc::clone(&store),
                shutting_down: shutdown.subscribe(),
                last: Arc::default(),
            });
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {addr} for /metrics: {e}; choose another address with \
                     --metrics-listen (VOXGATE_METRICS_LISTEN)"
                )
            })?),
            None => None,
        };
        crate::metrics::handle();
        let mut router = Router::new()
            .route("/alexa", alexa)
            .route("/", get(index))
            .with_state(Arc::new(state))
            .merge(probes);
        if metrics_listener.is_none() {
            router = router.route("/metrics", get(metrics));
        }
        let router = router
            // Companion bodies are small and must arrive whole within the body timeout (a
            // trickle of one byte a second does not hold a connection).
            .merge(
                companion
                    .layer(axum::extract::DefaultBodyLimit::max(COMPANION_BODY_LIMIT))
                    .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        settings.http.body_timeout,
                    )),
            )
            .merge(crate::companion::page::router())
            // Latency of every routed request, by route (not by raw path).
            .route_layer(axum::middleware::from_fn(observe))
            // No body timeout here: the routes that read a body bound it themselves (/alexa
            // reads its whole body within the body timeout, the companion API answers
            // within it), and the server cuts off a connection that stalls. A per-chunk
            // timer on every request cost every request a timer in the runtime's wheel.
            // One id through every log line of a request, echoed as x-request-id.
            .layer(
                tower::ServiceBuilder::new()
                    .map_request(forget_client_request_id)
                    .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                        RandomRequestId,
                    ))
                    .layer(TraceLayer::new_for_http().make_span_with(request_span))
                    .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id()),
            );
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; choose another address with --listen (VOXGATE_LISTEN)",
                settings.listen
            )
        })?;
        Ok(Self {
            shutdown,
            tasks,
            listener,
            router,
            store,
            broker,
            gate,
            checkpoints,
            limits: settings.http,
            verifier,
            metrics_listener,
            _claim: claim,
        })
    }

    /// The store this app uses.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The gate (tests read current codes from it until the companion API serves them).
    pub fn gate(&self) -> Arc<crate::gate::Gate> {
        Arc::clone(&self.gate)
    }

    /// The credential broker (tests read its STS call count).
    pub fn broker(&self) -> Arc<Broker> {
        Arc::clone(&self.broker)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        info!(%addr, "voxgate listening on http://{addr}");
        // Latency samples are folded into their histograms even if nobody scrapes.
        let upkeep = tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                crate::metrics::handle().run_upkeep();
            }
        });
        // Challenges whose time ran out are expired (and audited) even if nobody asks.
        let gate = Arc::clone(&self.gate);
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(error) = gate.expire_due().await {
                    warn!(%error, "could not expire challenges");
                }
            }
        });
        // Open event streams end when shutdown begins, so the graceful stop does not wait
        // for phones to disconnect.
        let streams = self.shutdown;
        let metrics_server = self.metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "metrics on http://{addr}/metrics");
            }
            let mut stop = streams.subscribe();
            let limits = self.limits;
            tokio::spawn(async move {
                // The same limits as the main listener (header timeout, connection cap,
                // bounded drain).
                let router = Router::new().route("/metrics", get(metrics));
                let _ = server::serve(listener, router, limits, async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .await;
            })
        });
        let shutdown = async move {
            shutdown.await;
            let _ = streams.send(true);
        };
        let served = server::serve(self.listener, self.router, self.limits, shutdown).await;
        // A request whose caller hung up may still be running an approved operation: it
        // finishes and is recorded before the store (and SQLite's serve lock) is let go.
        tokio::select! {
            done = tokio::time::timeout(server::DRAIN, self.tasks.all_done()) => {
                if done.is_err() {
                    warn!("requests still running after the drain; stopping anyway");
                }
            }
            () = until_hurried() => {}
        }
        sweeper.abort();
        upkeep.abort();
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        self.verifier.flush().await;
        self.checkpoints.sync();
        served?;
        Ok(())
    }
}

/// Set by a second stop signal: the drains stop waiting for requests in flight (what is
/// written behind, the replay ledger and the audit checkpoints, is still written).
static HURRY: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Stops waiting for requests in flight (a second Ctrl-C).
pub fn hurry() {
    HURRY.send_replace(true);
}

/// Whether [`hurry`] was called.
pub fn hurried() -> bool {
    *HURRY.borrow()
}

/// Resolves once [`hurry`] was called (at once if it was already).
pub(crate) async fn until_hurried() {
    let mut hurried = HURRY.subscribe();
    let _ = hurried.wait_for(|hurried| *hurried).await;
}

/// `GET /`: what this service is, for whoever opens its address in a browser.
async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>voxgate</title></head><body style=\"font-family: system-ui, sans-serif; ",
        "max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5\">",
        "<h1>voxgate</h1>",
        "<p>This is the backend of the Cloud Gate Alexa skill: it runs operations on AWS ",
        "accounts by voice. Alexa talks to it at <code>/alexa</code>; anything that changes ",
        "an account waits for the one-time code shown in the companion app.</p>",
        "<p><a href=\"/app\">Open the voxgate companion app</a> to see the codes ",
        "(pair it with a code from your voxgate operator).</p>",
        "</body></html>"
    ))
}

/// What the health and readiness probes look at.
#[derive(Clone)]
struct Probes {
    store: Arc<dyn Store>,
    shutting_down: tokio::sync::watch::Receiver<bool>,
    /// The store's last answer to a readiness probe, and when: a flood of probes costs one
    /// query a second, not one each (and cannot take the connections `/alexa` needs).
    last: Arc<tokio::sync::Mutex<Option<(std::time::Instant, Readiness)>>>,
}

/// The store's answer to a readiness probe: `Err` why it is not ready.
type Readiness = Result<(), &'static str>;

/// How long a readiness answer is reused.
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Liveness, cheap: the process answers, and which store it uses (nothing is queried).
async fn healthz(
    axum::extract::State(probes): axum::extract::State<Probes>,
) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": probes.store.backend(),
    }))
}

/// Readiness: the store answers within a second and the service is not shutting down;
/// 503 otherwise, so a load balancer sends traffic elsewhere.
async fn readyz(
    axum::extract::State(probes): axum::extract::State<Probes>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    use axum::http::StatusCode;
    if *probes.shutting_down.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "shutting down"})),
        );
    }
    // One probe of the store at a time; the others wait for it and reuse its answer.
    let mut last = probes.last.lock().await;
    let answer = match *last {
        Some((at, answer)) if at.elapsed() < READY_FOR => answer,
        _ => {
            let answered =
                tokio::time::timeout(std::time::Duration::from_secs(1), probes.store.audit_last())
                    .await;
            let answer = match answered {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => {
                    warn!(%error, "not ready: the store failed");
                    Err("the store failed")
                }
                Err(_) => Err("the store did not answer in time"),
            };
            *last = Some((std::time::Instant::now(), answer));
            answer
        }
    };
    drop(last);
    match answer {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"ready": true, "store": probes.store.backend()})),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        ),
    }
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// Records a routed request's latency by route, method and status.
async fn observe(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    // Methods from a fixed set: hyper accepts any token, and each would be a new series.
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    crate::metrics::http_duration(route, method, response.status().as_u16())
        .record(started.elapsed().as_secs_f64());
    response
}

/// Request ids: `r_` + a random prefix made once per process (so replicas differ) + a
/// counter, made here (an id sent by the client is dropped, so log lines cannot be made to
/// look like another request's). No randomness per request: it is on every request's path.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl tower_http::request_id::MakeRequestId for RandomRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        static PREFIX: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| crate::store::new_id("r"));
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", *PREFIX))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Drops an `x-request-id` the client sent: voxgate makes its own. (A plain function:
/// no future to make and box on every request.)
fn forget_client_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    request.headers_mut().remove("x-request-id");
    request
}

/// The span every log line of a request is written in: its id, method and path.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        alexa_request_id = tracing::field::Empty,
    )
}
