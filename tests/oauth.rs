//! Account linking: with an OAuth issuer configured, the access token in the request must
//! be a valid JWT from that issuer (keys from a real JWKS endpoint), and its subject finds
//! the user; otherwise the person hears how to link and gets a LinkAccount card.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::Duration;
use voxgate::store::{NewUser, OAuthSubject, UserName};

const ISSUER: &str = "https://login.example.test/pool-1";
const AUDIENCE: &str = "voxgate-alexa-client";

/// How the issuer's JWKS endpoint behaves right now.
#[derive(Clone)]
struct Behaviour {
    /// What it serves.
    jwks: Value,
    /// Seconds it waits before answering.
    delay: u64,
    /// The status it answers with.
    status: u16,
    /// Where it redirects to, if anywhere.
    redirect: Option<String>,
}

struct Issuer {
    key: rcgen::KeyPair,
    jwks_url: String,
    behaviour: std::sync::Arc<std::sync::Mutex<Behaviour>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Issuer {
    async fn start() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let point = key.public_key_raw().to_vec();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "key-1", "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]});
        let behaviour = std::sync::Arc::new(std::sync::Mutex::new(Behaviour {
            jwks,
            delay: 0,
            status: 200,
            redirect: None,
        }));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get({
                let behaviour = std::sync::Arc::clone(&behaviour);
                let fetches = std::sync::Arc::clone(&fetches);
                move || {
                    let now = behaviour.lock().unwrap().clone();
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        use axum::response::IntoResponse as _;
                        tokio::time::sleep(std::time::Duration::from_secs(now.delay)).await;
                        if let Some(to) = now.redirect {
                            return (
                                axum::http::StatusCode::FOUND,
                                [(axum::http::header::LOCATION, to)],
                            )
                                .into_response();
                        }
                        (
                            axum::http::StatusCode::from_u16(now.status).unwrap(),
                            axum::Json(now.jwks),
                        )
                            .into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            key,
            jwks_url,
            behaviour,
            fetches,
        }
    }

    fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().unwrap());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn token(&self, claims: Value) -> String {
        sign(&self.key, claims)
    }
}

fn sign(key: &rcgen::KeyPair, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("key-1".into());
    let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

fn claims(subject: &str, exp: i64) -> Value {
    json!({"iss": ISSUER, "sub": subject, "aud": AUDIENCE, "exp": exp, "iat": exp - 3600})
}

async fn server(issuer: &Issuer) -> TestServer {
    server_for(issuer, ISSUER).await
}

/// A server trusting tokens of `iss`, with keys from `issuer`'s JWKS.
async fn server_for(issuer: &Issuer, iss: &str) -> TestServer {
    let jwks = issuer.jwks_url.clone();
    let server = TestServer::start_with(&PKI, |args| {
        args.oauth.oauth_issuer = Some(iss.into());
        args.oauth.oauth_audience = vec![AUDIENCE.into()];
        args.oauth.oauth_jwks_url = Some(jwks);
    })
    .await;
    let acme = server.tenant("acme").await;
    server
        .store
        .add_user(
            &NewUser {
                tenant_id: acme.id,
                name: UserName::parse("alice").unwrap(),
                alexa_user_id: None,
                oauth_subject: Some(OAuthSubject::parse("alice-sub").unwrap()),
            },
            0,
        )
        .await
        .unwrap();
    server
}

fn with_token(server: &TestServer, token: Option<&str>) -> Value {
    let mut body = intent_at("ListInstancesIntent", &[], server.now());
    for user in ["/session/user", "/context/System/user"] {
        let user = body.pointer_mut(user).unwrap();
        match token {
            Some(t) => user["accessToken"] = Value::String(t.to_owned()),
            None => {
                user.as_object_mut().unwrap().remove("accessToken");
            }
        }
    }
    body
}

/// The answer of a recognised user whose tenant has no AWS account yet.
const RECOGNISED: &str = "hasn't linked an AWS account";

fn assert_link_required(response: &Value) {
    assert!(
        speech(response).contains("link your voxgate account"),
        "{response}"
    );
    assert_eq!(
        response["response"]["card"]["type"], "LinkAccount",
        "{response}"
    );
    assert_eq!(response["response"]["shouldEndSession"], true);
}

#[tokio::test]
async fn a_valid_token_identifies_the_user() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 3600;
    let response = server
        .say(with_token(
            &server,
            Some(&issuer.token(claims("alice-sub", exp))),
        ))
        .await;
    assert!(speech(&response).contains(RECOGNISED), "{response}");
}

#[tokio::test]
async fn a_token_with_client_id_instead_of_audience_is_accepted() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 3600;
    let token =
        issuer.token(json!({"iss": ISSUER, "sub": "alice-sub", "client_id": AUDIENCE, "exp": exp}));
    let response = server.say(with_token(&server, Some(&token))).await;
    assert!(speech(&response).contains(RECOGNISED), "{response}");
}

#[tokio::test]
async fn no_token_means_link_your_account() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    assert_link_required(&server.say(with_token(&server, None)).await);
}

#[tokio::test]
async fn invalid_tokens_mean_link_your_account() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let now = server.now().unix_timestamp();
    let stranger_key = rcgen::KeyPair::generate().unwrap();
    let cases = [
        ("expired", issuer.token(claims("alice-sub", now - 120))),
        ("other audience", issuer.token(json!({"iss": ISSUER, "sub": "alice-sub", "aud": "someone-else", "exp": now + 3600}))),
        ("other issuer", issuer.token(json!({"iss": "https://evil.example", "sub": "alice-sub", "aud": AUDIENCE, "exp": now + 3600}))),
        ("signed by another key", sign(&stranger_key, claims("alice-sub", now + 3600))),
        ("not a JWT", "Atza|opaque-token".to_owned()),
    ];
    for (what, token) in cases {
        let response = server.say(with_token(&server, Some(&token))).await;
        assert!(
            speech(&response).contains("link your voxgate account"),
            "{what}: {response}"
        );
        assert_eq!(
            response["response"]["card"]["type"], "LinkAccount",
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_token_stops_working_when_it_expires() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let token = issuer.token(claims("alice-sub", server.now().unix_timestamp() + 600));
    let response = server.say(with_token(&server, Some(&token))).await;
    assert!(speech(&response).contains(RECOGNISED), "{response}");
    server.clock.advance(Duration::minutes(20));
    assert_link_required(&server.say(with_token(&server, Some(&token))).await);
}

#[tokio::test]
async fn a_valid_token_for_an_unknown_subject_is_not_enrolled() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 3600;
    let response = server
        .say(with_token(
            &server,
            Some(&issuer.token(claims("mallory", exp))),
        ))
        .await;
    assert!(
        speech(&response).starts_with("I don't know you yet"),
        "{response}"
    );
}

// ---- Hardening (issue 8) ----

fn recognised(response: &Value) -> bool {
    speech(response).contains(RECOGNISED)
}

#[tokio::test]
async fn a_symmetric_key_in_the_jwks_is_never_used() {
    let issuer = Issuer::start().await;
    // The key set also holds a shared secret (an `oct` key): a token signed with it must
    // not pass, whatever its algorithm says.
    let secret = b"a shared secret anyone reading the key set knows";
    issuer.set(|b| {
        b.jwks["keys"].as_array_mut().unwrap().push(json!({
            "kty": "oct", "kid": "hs-1", "alg": "HS256", "use": "sig",
            "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        }))
    });
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 3600;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("alice-sub", exp),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    assert_link_required(&server.say(with_token(&server, Some(&forged))).await);
    // The real key still works.
    let token = issuer.token(claims("alice-sub", exp));
    assert!(recognised(
        &server.say(with_token(&server, Some(&token))).await
    ));
}

#[tokio::test]
async fn cognito_id_tokens_do_not_pass_for_access_tokens() {
    let issuer = Issuer::start().await;
    let pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf";
    let server = server_for(&issuer, pool).await;
    let exp = server.now().unix_timestamp() + 3600;
    let with_use = |token_use: Option<&str>| {
        let mut c = json!({"iss": pool, "sub": "alice-sub", "client_id": AUDIENCE, "exp": exp});
        if let Some(u) = token_use {
            c["token_use"] = json!(u);
        }
        issuer.token(c)
    };
    for refused in [Some("id"), None] {
        assert_link_required(
            &server
                .say(with_token(&server, Some(&with_use(refused))))
                .await,
        );
    }
    assert!(recognised(
        &server
            .say(with_token(&server, Some(&with_use(Some("access")))))
            .await
    ));
}

#[tokio::test]
async fn a_known_key_works_while_the_jwks_is_slow_to_refetch() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 3600;
    let token = issuer.token(claims("alice-sub", exp));
    assert!(recognised(
        &server.say(with_token(&server, Some(&token))).await
    ));
    // A token naming an unknown key makes voxgate refetch (at most every 30 s); the issuer
    // is slow to answer.
    server.clock.advance(Duration::seconds(31));
    issuer.set(|b| b.delay = 4);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("key-unknown".into());
    let unknown = jsonwebtoken::encode(
        &header,
        &claims("alice-sub", exp),
        &EncodingKey::from_ec_pem(issuer.key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let slow = server.say(with_token(&server, Some(&unknown)));
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            server.say(with_token(&server, Some(&token))),
        )
        .await
        .expect("a token with a known key does not wait for the refetch")
    };
    let started = std::time::Instant::now();
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(recognised(&fast), "{fast}");
    assert_link_required(&slow);
    assert_eq!(issuer.fetches(), 2, "the unknown key made voxgate refetch");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "it waited for that refetch"
    );
}

#[tokio::test]
async fn jwks_failures_back_off_and_keys_expire() {
    let issuer = Issuer::start().await;
    let server = server(&issuer).await;
    let exp = server.now().unix_timestamp() + 7200;
    let token = issuer.token(claims("alice-sub", exp));
    assert!(recognised(
        &server.say(with_token(&server, Some(&token))).await
    ));
    assert_eq!(issuer.fetches(), 1);
    // The issuer goes down. After the key set's ten minutes, one refetch fails; the keys
    // still serve until they are an hour old.
    issuer.set(|b| b.status = 500);
    server.clock.advance(Duration::minutes(11));
    assert!(recognised(
        &server.say(with_token(&server, Some(&token))).await
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(issuer.fetches(), 2);
    // Tokens keep coming: no refetch while backing off (30 s, then longer).
    for _ in 0..5 {
        assert!(recognised(
            &server.say(with_token(&server, Some(&token))).await
        ));
    }
    assert_eq!(issuer.fetches(), 2, "no refetch while backing off");
    // An hour after the last good fetch the keys are not used any more.
    server.clock.advance(Duration::minutes(50));
    assert_link_required(&server.say(with_token(&server, Some(&token))).await);
    // The issuer comes back: the next attempt after the back-off works again.
    issuer.set(|b| b.status = 200);
    server.clock.advance(Duration::minutes(11));
    assert!(recognised(
        &server.say(with_token(&server, Some(&token))).await
    ));
}

#[tokio::test]
async fn an_oversized_or_redirected_jwks_is_not_used() {
    for change in ["oversized", "redirect"] {
        let issuer = Issuer::start().await;
        let other = Issuer::start().await;
        let target = other.jwks_url.clone();
        issuer.set(|b| match change {
            "oversized" => {
                b.jwks["padding"] = json!("x".repeat(70 * 1024));
            }
            _ => b.redirect = Some(target),
        });
        let server = server(&issuer).await;
        let exp = server.now().unix_timestamp() + 3600;
        let token = issuer.token(claims("alice-sub", exp));
        assert_link_required(&server.say(with_token(&server, Some(&token))).await);
        assert_eq!(other.fetches(), 0, "{change}: redirects are not followed");
    }
}
