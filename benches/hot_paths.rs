//! Criterion benchmarks of voxgate's hot paths (figures, not tests; `cargo bench`):
//! request verification with a cached chain.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use voxgate::alexa::chain::{ChainSource, ChainStore, TrustRoots};
use voxgate::alexa::verify::{Mode, RequestVerifier, SignatureHeaders};
use voxgate::clock::SystemClock;

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

criterion_group!(benches, verification);
criterion_main!(benches);
