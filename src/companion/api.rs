//! `/api/v1/companion/...`: pairing, the user's pending challenges with their current code,
//! live events (Server-Sent Events) and deny. Every call but pairing needs the device token
//! (`Authorization: Bearer …`); a wrong or missing token is 401, another user's challenge
//! is 404, so nothing leaks across users.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::limit::Refusal;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{Value, json};
use tracing::{instrument, warn};

use super::secret_hash;
use crate::audit::Actor;
use crate::gate::{Challenge, Closing, Gate, GateEvent, State as ChallengeState};
use crate::store::{Store, User};

/// What the companion handlers share.
#[derive(Clone)]
pub struct CompanionState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The gate.
    pub gate: Arc<Gate>,
    /// Turns true when the service shuts down; open event streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The key pairing codes are stored under.
    pub pairing_key: super::PairingKey,
    /// Failed pairing attempts, per source and in all.
    pub pairing_limiter: Arc<super::limit::PairingLimiter>,
    /// Event streams open at once (each holds a permit).
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// Event streams open at once, across devices; more are answered 503.
pub const MAX_STREAMS: usize = 1024;

/// The companion API's routes.
pub fn router(state: CompanionState) -> Router {
    Router::new()
        .route("/api/v1/companion/pair", post(pair))
        .route("/api/v1/companion/challenges", get(challenges))
        .route("/api/v1/companion/challenges/{id}/deny", post(deny))
        .route("/api/v1/companion/events", get(events))
        .route("/api/v1/companion/unpair", post(unpair))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "This device is not paired, or was unpaired. Pair it again with a code from `voxgate pair`."})),
    )
        .into_response()
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    warn!(error = %e, "companion API failure");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on voxgate's side.",
    )
}

/// A paired device making a request.
struct Caller {
    device_id: String,
    token_hash: String,
    user: User,
}

/// The device behind the request's token, and its user.
async fn device(state: &CompanionState, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let token_hash = secret_hash(token);
    let (device_id, user_id) = state
        .store
        .device_user(&token_hash)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(unauthorized)?;
    let user = state
        .store
        .user(&user_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(unauthorized)?;
    Ok(Caller {
        device_id,
        token_hash,
        user,
    })
}

/// 429 with how long to wait.
fn too_many_attempts(wait: StdDuration) -> Response {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let message = format!(
        "Too many wrong pairing codes were tried. Wait {minutes} minute{}, then type the code \
         again (a new one from `voxgate pair` if it has expired).",
        if minutes == 1 { "" } else { "s" }
    );
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
        Json(json!({"error": message})),
    )
        .into_response()
}

#[instrument(skip_all)]
async fn pair(
    State(state): State<CompanionState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Bytes,
) -> Response {
    let source = peer.ip();
    let attempt = match state.pairing_limiter.attempt(source) {
        Ok(attempt) => attempt,
        Err(Refusal::TooMany(wait)) => {
            warn!(%source, "pairing refused: too many failed attempts");
            return too_many_attempts(wait);
        }
        Err(Refusal::Busy) => {
            warn!(%source, "pairing refused: too many attempts at once");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                Json(json!({"error": "Pairing is busy just now. Try again in a moment."})),
            )
                .into_response();
        }
    };
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned));
    let Some(code) = code else {
        return error(
            StatusCode::BAD_REQUEST,
            "Send {\"code\": \"…\"} with the pairing code from `voxgate pair`.",
        );
    };
    match super::pair(
        state.store.as_ref(),
        state.gate.audit(),
        &state.pairing_key,
        &code,
        state.gate.now(),
        &source.to_string(),
    )
    .await
    {
        Ok(Some(paired)) => {
            attempt.paired();
            Json(json!({
                "token": paired.token,
                "device_id": paired.device_id,
                "user": {"name": paired.user.name},
            }))
            .into_response()
        }
        Ok(None) => {
            drop(attempt);
            error(
                StatusCode::BAD_REQUEST,
                "That pairing code is unknown, was replaced by a newer one, or is already used \
                 or expired. Ask your operator for a new one (voxgate pair).",
            )
        }
        Err(e) => internal(&e),
    }
}

/// A pending challenge as the app shows it, with the code of this moment.
async fn view(gate: &Gate, challenge: &Challenge) -> Result<Value, crate::gate::GateError> {
    let code = gate.current_code(challenge).await?;
    let details: Vec<Value> = challenge
        .operation
        .details()
        .into_iter()
        .map(|(label, value)| json!([label, value]))
        .collect();
    let mut view = json!({
        "id": challenge.id,
        "kind": challenge.operation.kind(),
        "summary": challenge.summary,
        "details": details,
        "account": challenge.operation.account_name(),
        "region": challenge.operation.region(),
        "code": code.code,
        "seconds_left_in_step": code.seconds_left_in_step,
        "seconds_left": (challenge.expires_at - gate.now()).whole_seconds().max(0),
        "expires_at": challenge.expires_at.unix_timestamp(),
    });
    if let crate::ops::Operation::Instance(op) = &challenge.operation {
        view["action"] = json!(op.action);
        view["instance"] = json!({"id": op.instance_id, "name": op.instance_name});
    }
    Ok(view)
}

async fn pending_views(
    state: &CompanionState,
    user: &User,
) -> Result<Vec<Value>, crate::gate::GateError> {
    let mut out = Vec::new();
    for challenge in state.gate.pending_all(&user.id).await? {
        out.push(view(&state.gate, &challenge).await?);
    }
    Ok(out)
}

#[instrument(skip_all)]
async fn challenges(State(state): State<CompanionState>, headers: HeaderMap) -> Response {
    let user = match device(&state, &headers).await {
        Ok(caller) => caller.user,
        Err(response) => return response,
    };
    match pending_views(&state, &user).await {
        Ok(views) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"challenges": views})),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

/// The device unpairs itself: its token stops working at once.
#[instrument(skip_all)]
async fn unpair(State(state): State<CompanionState>, headers: HeaderMap) -> Response {
    let caller = match device(&state, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    match super::revoke(
        state.store.as_ref(),
        state.gate.audit(),
        &caller.device_id,
        &caller.user,
        true,
        state.gate.now(),
    )
    .await
    {
        Ok(true) => Json(json!({"device_id": caller.device_id, "revoked": true})).into_response(),
        Ok(false) => unauthorized(),
        Err(e) => internal(&e),
    }
}

#[instrument(skip_all, fields(challenge = %id))]
async fn deny(
    State(state): State<CompanionState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match device(&state, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let actor = Actor::Device(caller.device_id.clone());
    match state.gate.deny(&caller.user, &id, &actor).await {
        Ok(Closing::Closed(denied)) => {
            Json(json!({"id": denied.id, "state": "denied"})).into_response()
        }
        Ok(Closing::NotFound) => error(StatusCode::NOT_FOUND, "No such approval."),
        Ok(Closing::TooLate(current)) => too_late_to_deny(&current),
        Err(crate::gate::GateError::Unreadable(_)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "That approval could not be read back, so voxgate closed it. Nothing ran.",
                "state": "unreadable",
            })),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

/// 409: a deny that came too late says what became of the approval instead.
fn too_late_to_deny(current: &Challenge) -> Response {
    let message = match current.state {
        ChallengeState::Approved => {
            "Too late to deny: it was already approved with its code and is running now."
        }
        ChallengeState::Executed => "Too late to deny: it was already approved and has run.",
        ChallengeState::Failed => {
            "Too late to deny: it was already approved, but it failed, so nothing was changed."
        }
        ChallengeState::OutcomeUnknown => {
            "Too late to deny: it was already approved; whether it ran is unknown, so check the \
             resource."
        }
        ChallengeState::Denied => "It was already denied. Nothing ran.",
        ChallengeState::Cancelled => "It was already cancelled by voice. Nothing ran.",
        ChallengeState::TooManyWrongCodes => {
            "It was already cancelled after too many wrong codes. Nothing ran."
        }
        ChallengeState::Replaced => "It was already replaced by a newer request. Nothing ran.",
        ChallengeState::Expired => "It had already expired. Nothing ran.",
        ChallengeState::Unreadable => "It could not be read back and was closed. Nothing ran.",
        ChallengeState::Pending => "It is still waiting; try again.",
    };
    (
        StatusCode::CONFLICT,
        Json(json!({"error": message, "state": current.state})),
    )
        .into_response()
}

/// Server-Sent Events for one user: `challenges` (the pending list with current codes) at
/// once, after every change and whenever the code rolls over; and one event per change
/// (`created`, `confirmed`, `denied`, `cancelled`, `replaced`, `expired`, `executed`,
/// `failed`).
#[instrument(skip_all)]
async fn events(State(state): State<CompanionState>, headers: HeaderMap) -> Response {
    let caller = match device(&state, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
        warn!("refused an event stream: too many open");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "voxgate has too many live connections right now; the app will retry.",
        );
    };
    let stream = event_stream(state, caller.user, caller.token_hash, permit);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(StdDuration::from_secs(15)))
        .into_response()
}

struct StreamState {
    state: CompanionState,
    user: User,
    token_hash: String,
    events: tokio::sync::broadcast::Receiver<GateEvent>,
    queue: std::collections::VecDeque<Event>,
    started: bool,
    /// Seconds from the last snapshot to the next code roll.
    roll: u64,
    /// Held while the stream is open.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl StreamState {
    /// Queues the pending list; false if the device was revoked meanwhile (the stream
    /// then ends, so a revoked device stops receiving codes).
    async fn refresh(&mut self) -> bool {
        match self.state.store.device_user(&self.token_hash).await {
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(error) => {
                warn!(%error, "could not re-check a device");
                return false;
            }
        }
        if let Some((event, roll)) = snapshot(&self.state, &self.user).await {
            self.queue.push_back(event);
            self.roll = roll;
        }
        true
    }
}

async fn snapshot(state: &CompanionState, user: &User) -> Option<(Event, u64)> {
    let views = pending_views(state, user).await.ok()?;
    let roll = views
        .iter()
        .filter_map(|v| v["seconds_left_in_step"].as_u64())
        .min()
        .unwrap_or(crate::gate::STEP_SECONDS);
    let event = Event::default()
        .event("challenges")
        .json_data(json!({"challenges": views}))
        .ok()?;
    Some((event, roll))
}

fn event_stream(
    state: CompanionState,
    user: User,
    token_hash: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let events = state.gate.subscribe();
    let start = StreamState {
        state,
        user,
        token_hash,
        events,
        queue: std::collections::VecDeque::new(),
        started: false,
        roll: crate::gate::STEP_SECONDS,
        _permit: permit,
    };
    futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(event) = s.queue.pop_front() {
                return Some((Ok(event), s));
            }
            if !s.started {
                s.started = true;
                if !s.refresh().await {
                    return None;
                }
                continue;
            }
            let mut shutdown = s.state.shutdown.clone();
            if *shutdown.borrow() {
                return None;
            }
            // Wake for the next change, when the codes roll over, or at shutdown.
            tokio::select! {
                received = s.events.recv() => match received {
                    Ok(event) if event.user_id == s.user.id.as_str() => {
                        let data = json!({
                            "challenge_id": event.challenge_id,
                            "kind": event.kind,
                            "summary": event.summary,
                        });
                        if let Ok(change) = Event::default().event(event.kind.as_str()).json_data(data) {
                            s.queue.push_back(change);
                        }
                        if !s.refresh().await {
                            return None;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if !s.refresh().await {
                            return None;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(StdDuration::from_secs(s.roll.max(1))) => {
                    if !s.refresh().await {
                        return None;
                    }
                }
                _ = shutdown.changed() => return None,
            }
        }
    })
}
