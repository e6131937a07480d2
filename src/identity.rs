//! Who is speaking. With OAuth configured (account linking), the request's access token
//! must be a valid JWT (signature by a key from the JWKS, issuer, audience or client id,
//! expiry) and its subject finds the user. Otherwise the Alexa `userId` does.
//!
//! Knows the store (to find users) but nothing of HTTP; the skill turns the outcome into
//! speech.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::alexa::RequestEnvelope;
use crate::clock::Clock;
use crate::store::{Store, StoreError, User};

/// How long a fetched key set is trusted before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// An unknown key id makes voxgate refetch the key set, at most this often.
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(30);
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 30;

/// OAuth settings (account linking).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (or `client_id`, for providers whose access tokens have no
    /// audience, such as Cognito).
    pub audiences: Vec<String>,
    /// Where the signing keys are.
    pub jwks_url: url::Url,
}

/// The outcome of identifying a request.
#[derive(Debug, Clone)]
pub enum Speaker {
    /// An enrolled user.
    Known(User),
    /// Account linking is on and the token is missing or invalid.
    LinkRequired,
    /// No user is enrolled for this Alexa user id (or token subject).
    Unknown,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Instant,
}

/// Validates access tokens against a JWKS.
pub struct TokenVerifier {
    settings: OAuthSettings,
    http: reqwest::Client,
    keys: Mutex<Option<KeySet>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for `settings`.
    pub fn new(settings: OAuthSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: Mutex::new(None),
            clock,
        }
    }

    /// The token's subject, if the token is valid. Reasons for refusal go to the log.
    pub async fn subject(&self, token: &str) -> Option<String> {
        match self.verify(token).await {
            Ok(subject) => Some(subject),
            Err(reason) => {
                info!(reason, "access token refused");
                None
            }
        }
    }

    async fn verify(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        let kid = header.kid.ok_or("token has no key id")?;
        let (key, algorithm) = self.key(&kid).await?;
        if header.alg != algorithm {
            return Err("token algorithm does not match its key".into());
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        // exp, nbf and aud are checked below: time from voxgate's clock, and audience
        // either as `aud` or as `client_id`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("invalid token: {e}"))?
            .claims;
        let now = self.clock.now().unix_timestamp();
        if claims.exp + LEEWAY_SECONDS < now {
            return Err("token expired".into());
        }
        if claims.nbf.is_some_and(|nbf| nbf - LEEWAY_SECONDS > now) {
            return Err("token not yet valid".into());
        }
        let accepted = |v: &str| self.settings.audiences.iter().any(|a| a == v);
        let audience_ok = match &claims.aud {
            Some(Audience::One(a)) => accepted(a),
            Some(Audience::Many(list)) => list.iter().any(|a| accepted(a)),
            None => claims.client_id.as_deref().is_some_and(accepted),
        };
        if !audience_ok {
            return Err("token is for another audience".into());
        }
        if claims.sub.is_empty() {
            return Err("token has an empty subject".into());
        }
        Ok(claims.sub)
    }

    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), String> {
        let mut keys = self.keys.lock().await;
        let stale = keys.as_ref().is_none_or(|k| k.fetched.elapsed() > JWKS_TTL);
        let unknown = keys
            .as_ref()
            .is_some_and(|k| !k.keys.contains_key(kid) && k.fetched.elapsed() > JWKS_REFETCH_GAP);
        if stale || unknown {
            match self.fetch().await {
                Ok(fresh) => *keys = Some(fresh),
                Err(e) => {
                    warn!(error = %e, url = %self.settings.jwks_url, "could not fetch the JWKS")
                }
            }
        }
        keys.as_ref()
            .and_then(|k| k.keys.get(kid).cloned())
            .ok_or_else(|| format!("no key '{kid}' in the JWKS"))
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let body = self
            .http
            .get(self.settings.jwks_url.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Encryption keys, and keys of algorithms voxgate cannot verify, are skipped, so
            // one unusual key in the set does not break sign-in for everyone.
            let signing = jwk
                .common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
            if !signing {
                continue;
            }
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()) {
                Some(name) => match name.parse::<Algorithm>() {
                    Ok(algorithm) => algorithm,
                    Err(_) => continue,
                },
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => Algorithm::RS256,
                },
            };
            keys.insert(kid, (key, algorithm));
        }
        Ok(KeySet {
            keys,
            fetched: Instant::now(),
        })
    }
}

/// Finds the user behind a request.
#[derive(Debug)]
pub struct Identity {
    store: Arc<dyn Store>,
    tokens: Option<TokenVerifier>,
}

impl Identity {
    /// Identification by Alexa user id, or by OAuth token when `tokens` is set.
    pub fn new(store: Arc<dyn Store>, tokens: Option<TokenVerifier>) -> Self {
        Self { store, tokens }
    }

    /// Who sent `envelope`.
    pub async fn who(&self, envelope: &RequestEnvelope) -> Result<Speaker, StoreError> {
        let Some(user) = envelope.user() else {
            return Ok(Speaker::Unknown);
        };
        match &self.tokens {
            Some(tokens) => {
                let Some(token) = user.access_token.as_ref() else {
                    return Ok(Speaker::LinkRequired);
                };
                let Some(subject) = tokens.subject(token.expose_secret()).await else {
                    return Ok(Speaker::LinkRequired);
                };
                match self.store.user_by_oauth_subject(&subject).await? {
                    Some(user) => Ok(Speaker::Known(user)),
                    None => {
                        warn!(
                            oauth_subject = %subject,
                            "unknown user spoke; enrol with: voxgate user add --oauth-subject"
                        );
                        Ok(Speaker::Unknown)
                    }
                }
            }
            None => match self.store.user_by_alexa_id(&user.user_id).await? {
                Some(known) => Ok(Speaker::Known(known)),
                None => {
                    warn!(
                        alexa_user_id = %user.user_id,
                        "unknown user spoke; enrol with: voxgate user add --alexa-user-id"
                    );
                    Ok(Speaker::Unknown)
                }
            },
        }
    }
}
