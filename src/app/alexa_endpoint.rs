//! `POST /alexa`: read the raw body (bounded), verify it, hand the parsed request to the
//! skill, return its response. A request that fails verification gets a 400 with a short
//! reason code and runs nothing.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use serde_json::json;
use tracing::{Instrument as _, warn};

use super::{AppState, MAX_ALEXA_BODY_BYTES};
use crate::alexa::verify::SignatureHeaders;

/// Runs in the request's span (made by the router for every request), which has an empty
/// `alexa_request_id` field this fills in once the body is verified: no span of its own,
/// which would cost every request a second span to make, format and close.
pub(super) async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Held until the answer is made (also while a request that must run to the end runs).
    let Ok(_in_flight) = state.in_flight.try_acquire() else {
        warn!("shed an /alexa request: too many in flight");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "busy", "reason": "too-many-requests"})),
        )
            .into_response();
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_ALEXA_BODY_BYTES as u64) {
        return refuse("body-too-large", "request body is larger than 128 KiB");
    }
    // Bounded read: a body without (or lying about) Content-Length stops at the limit, and
    // the whole of it must arrive within the body timeout (a trickle does not hold a slot).
    let read = tokio::time::timeout(state.body_timeout, to_bytes(body, MAX_ALEXA_BODY_BYTES)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return refuse(
                "body-too-large",
                "request body is larger than 128 KiB or unreadable",
            );
        }
        Err(_) => {
            warn!("refused an /alexa request: its body did not arrive in time");
            return (
                StatusCode::REQUEST_TIMEOUT,
                Json(json!({"error": "request refused", "reason": "body-timeout"})),
            )
                .into_response();
        }
    };

    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature_headers = SignatureHeaders {
        cert_chain_url: text("signaturecertchainurl"),
        signature_256: text("signature-256"),
        signature_sha1: text("signature"),
        proxied: [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-real-ip",
            "via",
        ]
        .iter()
        .any(|name| headers.contains_key(*name)),
    };
    let envelope = match state.verifier.verify(signature_headers, &bytes).await {
        Ok(envelope) => envelope,
        Err(error) => {
            metrics::counter!(crate::metrics::VERIFICATION_FAILURES, "reason" => error.reason())
                .increment(1);
            return refuse(error.reason(), &error.to_string());
        }
    };
    tracing::Span::current().record("alexa_request_id", envelope.request.request_id.as_str());
    count(&envelope.request);

    // A request that may change state is handled to the end even if Alexa hangs up (its
    // own task, which a graceful stop waits for); one that only reads is answered in place.
    // Either way a panic is contained: logged with the request id, answered with a 500.
    let handled = if crate::skill::Skill::must_run_to_the_end(&envelope) {
        let skill = std::sync::Arc::clone(&state.skill);
        // The task logs in this request's span (its id on every line).
        state
            .tasks
            .spawn(async move { skill.handle(&envelope).await }.in_current_span())
            .await
            .map_err(|error| error.to_string())
    } else {
        std::panic::AssertUnwindSafe(state.skill.handle(&envelope))
            .catch_unwind()
            .await
            .map_err(|_| "the handler panicked".to_owned())
    };
    match handled {
        Ok(response) => Json(response).into_response(),
        Err(error) => {
            tracing::error!(%error, "request handler failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "internal error"})),
            )
                .into_response()
        }
    }
}

/// Counts a verified request by its type and intent (from fixed sets only).
fn count(request: &crate::alexa::envelope::Request) {
    use crate::alexa::envelope::RequestKind;
    let (kind, intent) = match &request.kind {
        RequestKind::Launch => ("LaunchRequest", ""),
        RequestKind::Intent(intent) => (
            "IntentRequest",
            crate::skill::intents::known_name(&intent.intent.name).unwrap_or("other"),
        ),
        RequestKind::SessionEnded(_) => ("SessionEndedRequest", ""),
        RequestKind::CanFulfillIntent(_) => ("CanFulfillIntentRequest", ""),
        RequestKind::SkillEvent(_) => ("SkillEvent", ""),
        RequestKind::Other { .. } => ("other", ""),
    };
    crate::metrics::alexa_requests(kind, intent).increment(1);
}

fn refuse(reason: &'static str, detail: &str) -> Response {
    warn!(reason, detail, "refused an /alexa request");
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "request refused", "reason": reason})),
    )
        .into_response()
}
