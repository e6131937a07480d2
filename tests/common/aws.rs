//! AWS for tests: a real moto_server (shared by the run when scripts/test started one, else
//! spawned for this test binary), a recording proxy in front of it so tests can read the
//! exact requests voxgate sent (moto does not enforce ExternalId, session policies or
//! durations), and helpers that seed resources through the AWS APIs.

use std::process::{Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// The moto endpoint for this test binary.
pub static MOTO: LazyLock<String> =
    LazyLock::new(|| match std::env::var("VOXGATE_TEST_MOTO_URL") {
        Ok(url) => url,
        Err(_) => spawn_moto(&[]),
    });

/// Starts a moto_server of this test binary's own (stopped when the binary exits).
pub fn spawn_moto(extra_env: &[(&str, &str)]) -> String {
    let server = std::env::var("VOXGATE_MOTO_SERVER")
        .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
    assert!(
        std::path::Path::new(&server).exists(),
        "moto_server not found at {server}: run ./scripts/test, which installs moto into .venv"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The shell watches this test process and stops moto when it exits; it outlives us by
    // design, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args([
            "-c",
            r#"MOTO_EC2_LOAD_DEFAULT_AMIS=false "$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!
               while kill -0 "$2" 2>/dev/null; do sleep 1; done; kill $m"#,
            &server,
            &port.to_string(),
            &std::process::id().to_string(),
        ])
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    format!("http://127.0.0.1:{port}")
}

/// Calls moto's IAM query API directly (the suite does not compile aws-sdk-iam for two
/// set-up calls); moto routes by the credential scope and does not check the signature.
pub async fn iam_call(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2010-05-08");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(form.finish())
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// The text of the first `<tag>…</tag>` in an XML answer.
pub fn xml_value(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_owned()
}

/// SDK settings as the tests use them: explicit region, static test credentials (requests
/// must be signed; moto routes by the SigV4 scope), the given endpoint, no retries.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_as(endpoint, "testing", "testing")
}

/// As [`sdk_config`], acting with the given access key.
pub fn sdk_config_as(endpoint: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key.to_owned(),
            secret_key.to_owned(),
            None,
            None,
            "tests",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build()
}

/// One request that passed through the proxy.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub authorization: String,
    /// `X-Amz-Target` of JSON-protocol requests (Budgets, SSM, Cost Explorer).
    pub target: String,
    pub body: Vec<u8>,
}

impl Captured {
    /// Form fields of a query-protocol request (STS, EC2).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The API action: the `Action` field of a query request, else the operation named by
    /// `X-Amz-Target`.
    pub fn action(&self) -> Option<String> {
        self.field("Action").or_else(|| {
            self.target
                .rsplit('.')
                .next()
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
        })
    }

    /// The body of a JSON-protocol request.
    #[allow(dead_code)]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A proxy in front of moto that records every request, and can be told to leave some
/// unanswered (a hanging AWS endpoint).
#[derive(Clone)]
pub struct RecordingProxy {
    pub url: String,
    pub captured: Arc<Mutex<Vec<Captured>>>,
    delayed: Arc<Mutex<Vec<(String, Duration)>>>,
    failing: Arc<Mutex<Vec<String>>>,
    refused_accounts: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<(String, String)>>>,
    unanswered: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    captured: Arc<Mutex<Vec<Captured>>>,
    delayed: Arc<Mutex<Vec<(String, Duration)>>>,
    failing: Arc<Mutex<Vec<String>>>,
    refused_accounts: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<(String, String)>>>,
    unanswered: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let captured = Captured {
        path: path.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        target: headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.to_vec(),
    };
    let action = captured.action().unwrap_or_default();
    let role_arn = captured.field("RoleArn").unwrap_or_default();
    state.captured.lock().unwrap().push(captured);
    if action == "AssumeRole"
        && state
            .refused_accounts
            .lock()
            .unwrap()
            .iter()
            .any(|account| role_arn.contains(&format!(":{account}:")))
    {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>\
                   not authorized to perform sts:AssumeRole</Message></Error><RequestId>r-403\
                   </RequestId></ErrorResponse>";
        return (StatusCode::FORBIDDEN, xml).into_response();
    }
    let canned = state
        .answered
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, body)| body.clone());
    if let Some(body) = canned {
        return (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.1")],
            body,
        )
            .into_response();
    }
    let delay = state
        .delayed
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| a == "*" || *a == action)
        .map(|(_, delay)| *delay);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut request = state
        .http
        .request(method, format!("{}{path}", state.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let fails = state.failing.lock().unwrap().contains(&action);
    let unanswered = state.unanswered.lock().unwrap().contains(&action);
    let sent = request.body(body).send().await;
    if unanswered {
        // Done upstream; the answer never comes back.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    match sent {
        Ok(_) if fails => {
            // Done upstream, but answered as an internal error.
            let xml = "<Response><Errors><Error><Code>InternalError</Code><Message>An internal \
                       error has occurred</Message></Error></Errors><RequestID>r-500</RequestID>\
                       </Response>";
            (StatusCode::INTERNAL_SERVER_ERROR, xml).into_response()
        }
        Ok(upstream) => {
            let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap();
            let mut out = HeaderMap::new();
            for (name, value) in upstream.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let bytes = upstream.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

impl RecordingProxy {
    pub async fn start(upstream: &str) -> Self {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let delayed = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(Mutex::new(Vec::new()));
        let refused_accounts = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let unanswered = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream.to_owned(),
            captured: Arc::clone(&captured),
            delayed: Arc::clone(&delayed),
            failing: Arc::clone(&failing),
            refused_accounts: Arc::clone(&refused_accounts),
            answered: Arc::clone(&answered),
            unanswered: Arc::clone(&unanswered),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            captured,
            delayed,
            failing,
            refused_accounts,
            answered,
            unanswered,
        }
    }

    /// From now on, STS refuses to let anyone assume a role in `account` (as when its trust
    /// policy or ExternalId does not match).
    #[allow(dead_code)]
    pub fn refuse_roles_in(&self, account: &str) {
        self.refused_accounts
            .lock()
            .unwrap()
            .push(account.to_owned());
    }

    /// From now on, requests for the JSON-protocol `action` are recorded and answered with
    /// `body` instead of reaching moto: for the few calls moto does not implement (Budgets'
    /// `UpdateBudget`), whose request is what the test checks.
    #[allow(dead_code)]
    pub fn answer(&self, action: &str, body: &str) {
        let mut answered = self.answered.lock().unwrap();
        answered.retain(|(a, _)| a != action);
        answered.push((action.to_owned(), body.to_owned()));
    }

    /// From now on, requests for `action` are carried out by moto but answered with an EC2
    /// `InternalError` (HTTP 500): a change that happened behind an error answer.
    #[allow(dead_code)]
    pub fn fail_after_forwarding(&self, action: &str) {
        self.failing.lock().unwrap().push(action.to_owned());
    }

    /// From now on, requests for `action` (e.g. `StopInstances`, or `*` for all) are
    /// received and recorded but never answered.
    pub fn hang_on(&self, action: &str) {
        self.delay_on(action, Duration::from_secs(3600));
    }

    /// From now on, requests for `action` are answered only after `delay`.
    pub fn delay_on(&self, action: &str, delay: Duration) {
        self.delayed
            .lock()
            .unwrap()
            .push((action.to_owned(), delay));
    }

    /// From now on, requests for `action` are carried out by moto, but its answer never
    /// comes back.
    #[allow(dead_code)]
    pub fn hang_after_forwarding(&self, action: &str) {
        self.unanswered.lock().unwrap().push(action.to_owned());
    }

    /// From now on, nothing is delayed or left unanswered any more (requests already
    /// waiting stay as they are).
    #[allow(dead_code)]
    pub fn clear_delays(&self) {
        self.delayed.lock().unwrap().clear();
        self.unanswered.lock().unwrap().clear();
    }

    /// Every AssumeRole request that went through, in order.
    pub fn assume_role_calls(&self) -> Vec<Captured> {
        self.captured
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.action().as_deref() == Some("AssumeRole"))
            .cloned()
            .collect()
    }
}

/// A 12-digit account id no other test uses.
pub fn fresh_account_id() -> String {
    let suffix = super::unique_suffix();
    let digits: String = suffix.chars().filter(|c| c.is_ascii_digit()).collect();
    format!("{:0>12}", &digits[digits.len().saturating_sub(12)..])
}

/// An EC2 client acting in `account` (through AssumeRole, as moto's multi-account mode
/// works), for seeding.
pub async fn ec2_in(account: &str, region: &str) -> aws_sdk_ec2::Client {
    ec2_at(&MOTO, account, region).await
}

/// As [`ec2_in`], on the moto at `endpoint`.
pub async fn ec2_at(endpoint: &str, account: &str, region: &str) -> aws_sdk_ec2::Client {
    let base = sdk_config(endpoint);
    let sts = aws_sdk_sts::Client::new(&base);
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seeder"))
        .role_session_name("seeder")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let config = aws_sdk_ec2::config::Builder::from(&base)
        .credentials_provider(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "seeder",
        ))
        .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// SDK settings acting in `account` (through AssumeRole, as moto's multi-account mode
/// works), in `region`: any service's client for seeding, e.g.
/// `aws_sdk_cloudwatch::Client::new(&sdk_in(&account, "eu-west-1").await)`.
#[allow(dead_code)]
pub async fn sdk_in(account: &str, region: &str) -> SdkConfig {
    let base = sdk_config(&MOTO);
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seeder"))
        .role_session_name("seeder")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    base.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "seeder",
        )))
        .region(Region::new(region.to_owned()))
        .build()
}

/// The `voxgate-HealthCheck` SSM document in `account`, as the customer's stack creates it.
#[allow(dead_code)]
pub async fn health_check_document(account: &str) {
    aws_sdk_ssm::Client::new(&sdk_in(account, "eu-west-1").await)
        .create_document()
        .name("voxgate-HealthCheck")
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .content(
            serde_json::json!({"schemaVersion": "2.2", "description": "health", "mainSteps": [
                {"action": "aws:runShellScript", "name": "healthCheck",
                 "inputs": {"runCommand": ["uptime"]}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
}

/// Runs an instance named `name` with extra tags; stops it if `running` is false.
pub async fn seed_instance(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    tags: &[(&str, &str)],
    running: bool,
) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let mut spec = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value(name).build());
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_owned();
    if !running {
        ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    }
    id
}

/// What the moto at `endpoint` answered (`/moto-api/data.json`).
pub async fn moto_data(endpoint: &str) -> serde_json::Value {
    let bytes = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
