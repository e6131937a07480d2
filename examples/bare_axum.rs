//! The ceiling of the load benchmark (`scripts/bench-load`): a bare axum endpoint that
//! parses the JSON body and returns a fixed Help answer, on the same runtime and HTTP stack
//! voxgate uses. Usage: `bare_axum ADDR` (prints `listening on http://ADDR`).
#![allow(missing_docs)]

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn alexa(Json(body): Json<Value>) -> Json<Value> {
    let _ = body.get("request");
    Json(json!({
        "version": "1.0",
        "response": {
            "outputSpeech": {"type": "PlainText", "text": "I run operations on your AWS account by voice."},
            "reprompt": {"outputSpeech": {"type": "PlainText", "text": "What would you like to do?"}},
            "shouldEndSession": false
        }
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, axum::Router::new().route("/alexa", post(alexa))).await
}
