//! Prometheus metrics through the `metrics` facade: code anywhere counts what happened
//! (`metrics::counter!`), and `GET /metrics` renders the process's recorder in the
//! Prometheus text format. Labels take values from small fixed sets only (an intent voxgate
//! does not know is counted as `other`), so a stranger cannot grow the series.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests to `/alexa` that passed verification, by request type and intent.
pub const ALEXA_REQUESTS: &str = "voxgate_alexa_requests_total";
/// Requests to `/alexa` refused by verification, by reason.
pub const VERIFICATION_FAILURES: &str = "voxgate_verification_failures_total";
/// HTTP requests by route, method and status, with their latency.
pub const HTTP_DURATION: &str = "voxgate_http_request_duration_seconds";
/// Challenges (held operations) by what happened to them.
pub const CHALLENGES: &str = "voxgate_challenges_total";
/// Audit records written, by outcome.
pub const AUDIT_RECORDS: &str = "voxgate_audit_records_total";
/// Audit writes that failed (the decision they were to record was not taken).
pub const AUDIT_WRITE_FAILURES: &str = "voxgate_audit_write_failures_total";
/// AssumeRole calls, by result.
pub const STS_CALLS: &str = "voxgate_sts_calls_total";
/// KMS calls (data keys made and opened), by call and result.
pub const KMS_CALLS: &str = "voxgate_kms_calls_total";
/// Credential cache lookups, by result (hit or miss).
pub const CREDENTIAL_CACHE: &str = "voxgate_credential_cache_total";
/// Cached sessions dropped because the cache was full.
pub const CREDENTIAL_CACHE_EVICTIONS: &str = "voxgate_credential_cache_evictions_total";
/// SQLite commits (each waits for the disk once).
pub const SQLITE_COMMITS: &str = "voxgate_sqlite_commits_total";
/// SQLite write transactions committed (several may share one commit).
pub const SQLITE_WRITES: &str = "voxgate_sqlite_write_transactions_total";

/// Latency buckets in seconds: Alexa waits at most 8 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's); then this
        // one renders only the descriptions.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        ALEXA_REQUESTS,
        "Verified /alexa requests by request type and intent."
    );
    describe_counter!(
        VERIFICATION_FAILURES,
        "/alexa requests refused by request verification, by reason."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route, method and status."
    );
    describe_counter!(CHALLENGES, "Held operations, by what happened to them.");
    describe_counter!(AUDIT_RECORDS, "Audit records written, by outcome.");
    describe_counter!(
        AUDIT_WRITE_FAILURES,
        "Audit writes that failed (the decision was not taken)."
    );
    describe_counter!(STS_CALLS, "AssumeRole calls, by result.");
    describe_counter!(KMS_CALLS, "KMS calls, by call and result.");
    describe_counter!(
        CREDENTIAL_CACHE,
        "Credential cache lookups (hit: no STS call), by result."
    );
    describe_counter!(
        CREDENTIAL_CACHE_EVICTIONS,
        "Cached sessions dropped because the cache was full (asked for again when needed)."
    );
    describe_counter!(
        SQLITE_COMMITS,
        "SQLite commits, each one wait for the disk; the write transactions that queued \
         meanwhile share it."
    );
    describe_counter!(
        SQLITE_WRITES,
        "SQLite write transactions committed (divided by voxgate_sqlite_commits_total: how \
         many shared a commit)."
    );
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    handle().render()
}

/// The latency histogram of `route`, `method` and `status`. Handles are looked up in the
/// recorder once per thread and kept: on every request's path, building the labelled key
/// and finding it in the registry cost more than recording the sample.
pub fn http_duration(route: &str, method: &'static str, status: u16) -> metrics::Histogram {
    type ByRoute = HashMap<String, HashMap<(&'static str, u16), metrics::Histogram>>;
    thread_local! {
        static HANDLES: RefCell<ByRoute> = RefCell::default();
    }
    handle();
    HANDLES.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), HashMap::new());
        }
        let made = || {
            metrics::histogram!(
                HTTP_DURATION,
                "route" => route.to_owned(),
                "method" => method,
                "status" => status.to_string()
            )
        };
        match routes.get_mut(route) {
            Some(by_status) => by_status
                .entry((method, status))
                .or_insert_with(made)
                .clone(),
            None => made(),
        }
    })
}

/// The counter of verified `/alexa` requests of `kind` and `intent` (fixed sets), kept per
/// thread like [`http_duration`]'s handles.
pub fn alexa_requests(kind: &'static str, intent: &'static str) -> metrics::Counter {
    thread_local! {
        static HANDLES: RefCell<HashMap<(&'static str, &'static str), metrics::Counter>> =
            RefCell::default();
    }
    handle();
    HANDLES.with_borrow_mut(|counters| {
        counters
            .entry((kind, intent))
            .or_insert_with(
                || metrics::counter!(ALEXA_REQUESTS, "type" => kind, "intent" => intent),
            )
            .clone()
    })
}
