//! `/api/v1/companion/...`: pairing, the user's pending challenges with their current code,
//! live events (Server-Sent Events) and deny. Every call but pairing needs the device token
//! (`Authorization: Bearer …`); a wrong or missing token is 401, another user's challenge
//! is 404, so nothing leaks across users.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{Value, json};
use tracing::{instrument, warn};

use super::secret_hash;
use crate::gate::{Challenge, Gate, GateEvent};
use crate::store::{Store, User};

/// What the companion handlers share.
#[derive(Clone)]
pub struct CompanionState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The gate.
    pub gate: Arc<Gate>,
}

/// The companion API's routes.
pub fn router(state: CompanionState) -> Router {
    Router::new()
        .route("/api/v1/companion/pair", post(pair))
        .route("/api/v1/companion/challenges", get(challenges))
        .route("/api/v1/companion/challenges/{id}/deny", post(deny))
        .route("/api/v1/companion/events", get(events))
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

/// The user behind the request's device token.
async fn device_user(state: &CompanionState, headers: &HeaderMap) -> Result<User, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let (_, user_id) = state
        .store
        .device_user(&secret_hash(token))
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(unauthorized)?;
    state
        .store
        .user(&user_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(unauthorized)
}

#[instrument(skip_all)]
async fn pair(State(state): State<CompanionState>, body: Bytes) -> Response {
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned));
    let Some(code) = code else {
        return error(
            StatusCode::BAD_REQUEST,
            "Send {\"code\": \"…\"} with the pairing code from `voxgate pair`.",
        );
    };
    match super::pair(state.store.as_ref(), &code, state.gate.now()).await {
        Ok(Some(paired)) => Json(json!({
            "token": paired.token,
            "device_id": paired.device_id,
            "user": {"name": paired.user.name},
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::BAD_REQUEST,
            "That pairing code is unknown, already used or expired. Ask for a new one (`voxgate pair`).",
        ),
        Err(e) => internal(&e),
    }
}

/// A pending challenge as the app shows it, with the code of this moment.
async fn view(gate: &Gate, challenge: &Challenge) -> Result<Value, crate::gate::GateError> {
    let code = gate.current_code(challenge).await?;
    Ok(json!({
        "id": challenge.id,
        "summary": challenge.summary,
        "action": challenge.operation.action,
        "instance": {"id": challenge.operation.instance_id, "name": challenge.operation.instance_name},
        "account": challenge.operation.account_name,
        "region": challenge.operation.region,
        "code": code.code,
        "seconds_left_in_step": code.seconds_left_in_step,
        "seconds_left": (challenge.expires_at - gate.now()).whole_seconds().max(0),
        "expires_at": challenge.expires_at.unix_timestamp(),
    }))
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
    let user = match device_user(&state, &headers).await {
        Ok(user) => user,
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

#[instrument(skip_all, fields(challenge = %id))]
async fn deny(
    State(state): State<CompanionState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = match device_user(&state, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match state.gate.challenge_of(&user, &id).await {
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such approval."),
        Ok(Some(_)) => {}
        Err(e) => return internal(&e),
    }
    match state.gate.deny(&user, &id).await {
        Ok(Some(denied)) => Json(json!({"id": denied.id, "state": "denied"})).into_response(),
        Ok(None) => error(StatusCode::CONFLICT, "That approval is no longer waiting."),
        Err(e) => internal(&e),
    }
}

/// Server-Sent Events for one user: `challenges` (the pending list with current codes) at
/// once, after every change and whenever the code rolls over; and one event per change
/// (`created`, `confirmed`, `denied`, `cancelled`, `replaced`, `expired`, `executed`,
/// `failed`).
#[instrument(skip_all)]
async fn events(State(state): State<CompanionState>, headers: HeaderMap) -> Response {
    let user = match device_user(&state, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let stream = event_stream(state, user);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(StdDuration::from_secs(15)))
        .into_response()
}

struct StreamState {
    state: CompanionState,
    user: User,
    events: tokio::sync::broadcast::Receiver<GateEvent>,
    queue: std::collections::VecDeque<Event>,
    started: bool,
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
) -> impl Stream<Item = Result<Event, Infallible>> {
    let events = state.gate.subscribe();
    let start = StreamState {
        state,
        user,
        events,
        queue: std::collections::VecDeque::new(),
        started: false,
    };
    futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(event) = s.queue.pop_front() {
                return Some((Ok(event), s));
            }
            if !s.started {
                s.started = true;
                if let Some((event, _)) = snapshot(&s.state, &s.user).await {
                    return Some((Ok(event), s));
                }
                continue;
            }
            // Wake for the next change, or when the codes roll over.
            let roll = snapshot(&s.state, &s.user)
                .await
                .map_or(crate::gate::STEP_SECONDS, |(_, r)| r);
            tokio::select! {
                received = s.events.recv() => match received {
                    Ok(event) if event.user_id == s.user.id.as_str() => {
                        let data = json!({"challenge_id": event.challenge_id, "kind": event.kind, "summary": event.summary});
                        if let Ok(change) = Event::default().event(event.kind.as_str()).json_data(data) {
                            s.queue.push_back(change);
                        }
                        if let Some((list, _)) = snapshot(&s.state, &s.user).await {
                            s.queue.push_back(list);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Some((list, _)) = snapshot(&s.state, &s.user).await {
                            s.queue.push_back(list);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(StdDuration::from_secs(roll.max(1))) => {
                    if let Some((list, _)) = snapshot(&s.state, &s.user).await {
                        s.queue.push_back(list);
                    }
                }
            }
        }
    })
}
