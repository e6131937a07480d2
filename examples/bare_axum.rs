//! The ceiling of the load benchmark (`scripts/bench-load`): a bare axum endpoint that
//! parses the JSON body and returns a fixed Help answer, on the same runtime and HTTP stack
//! voxgate uses. The answer carries voxgate's own Help sentence and reprompt (taken from its
//! speech catalog once, at start), so the ceiling, voxgate and the peer send the same speech
//! and the comparison is of the work around it, not of how long the sentence is.
//!
//! Usage: `bare_axum ADDR` (prints `listening on http://ADDR`), or `bare_axum --speech`
//! (prints the Help sentence and the reprompt, one per line, for the peer).
#![allow(missing_docs)]

use std::sync::LazyLock;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use voxgate::skill::{Line, Locale};

static HELP: LazyLock<String> = LazyLock::new(|| Line::Help.text(Locale::EnUs));
static REPROMPT: LazyLock<String> = LazyLock::new(|| Line::HelpReprompt.text(Locale::EnUs));

async fn alexa(Json(body): Json<Value>) -> Json<Value> {
    let _ = body.get("request");
    Json(json!({
        "version": "1.0",
        "response": {
            "outputSpeech": {"type": "PlainText", "text": HELP.as_str()},
            "reprompt": {"outputSpeech": {"type": "PlainText", "text": REPROMPT.as_str()}},
            "shouldEndSession": false
        }
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--speech") {
        println!("{}\n{}", *HELP, *REPROMPT);
        return Ok(());
    }
    let addr = arg.unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, axum::Router::new().route("/alexa", post(alexa))).await
}
