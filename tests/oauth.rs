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

struct Issuer {
    key: rcgen::KeyPair,
    jwks_url: String,
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
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { key, jwks_url }
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
    let jwks = issuer.jwks_url.clone();
    let server = TestServer::start_with(&PKI, |args| {
        args.oauth.oauth_issuer = Some(ISSUER.into());
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
