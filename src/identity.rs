//! Who is speaking. With OAuth configured (account linking), the request's access token
//! must be a valid JWT (signature by a key from the JWKS, issuer, audience or client id,
//! expiry) and its subject finds the user. Otherwise the Alexa `userId` does.
//!
//! Knows the store (to find users) but nothing of HTTP; the skill turns the outcome into
//! speech.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use crate::alexa::RequestEnvelope;
use crate::clock::Clock;
use crate::store::{Store, StoreError, User};

/// A fetched key set is refreshed after this long.
const JWKS_TTL: Duration = Duration::minutes(10);
/// Keys older than this are never used, even when the issuer cannot be reached: a key the
/// issuer withdrew must stop working.
const JWKS_MAX_AGE: Duration = Duration::hours(1);
/// An unknown key id makes voxgate refetch the key set, at most this often.
const JWKS_REFETCH_GAP: Duration = Duration::seconds(30);
/// After a failed fetch, no new fetch for this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::seconds(30);
const MAX_BACKOFF: Duration = Duration::minutes(10);
/// Largest key set accepted.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a token check waits for a fetch of the key set.
const FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
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

impl OAuthSettings {
    /// Whether the issuer is an Amazon Cognito user pool, whose ID tokens carry the same
    /// issuer and keys as its access tokens and must not pass for them.
    fn is_cognito(&self) -> bool {
        url::Url::parse(&self.issuer).ok().is_some_and(|u| {
            u.host_str()
                .is_some_and(|h| h.starts_with("cognito-idp.") && h.ends_with(".amazonaws.com"))
        })
    }
}

/// The outcome of identifying a request.
#[derive(Debug, Clone)]
pub enum Speaker {
    /// An enrolled user.
    Known(User),
    /// Account linking is on and the token is missing or invalid.
    LinkRequired,
    /// No user is enrolled for this Alexa user id (or token subject): how to enrol them,
    /// as the flag and value `voxgate user add` takes (`--alexa-user-id amzn1.ask.…`), if
    /// the request named them at all.
    Unknown(Option<(&'static str, String)>),
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
    #[serde(default)]
    token_use: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: OffsetDateTime,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<KeySet>, String>>>;

/// The key set and when to try the issuer again.
#[derive(Default)]
struct Keys {
    current: Option<Arc<KeySet>>,
    last_attempt: Option<OffsetDateTime>,
    retry_at: Option<OffsetDateTime>,
    backoff: Option<Duration>,
    fetching: Option<Fetch>,
}

struct Inner {
    settings: OAuthSettings,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    clock: Arc<dyn Clock>,
}

/// Validates access tokens against a JWKS. The key set is fetched once for every check that
/// needs it (single flight, a bounded wait), never under a lock that checks with a known
/// key would wait on; failures back off, and keys too old are dropped.
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn lock(keys: &Mutex<Keys>) -> std::sync::MutexGuard<'_, Keys> {
    keys.lock().unwrap_or_else(|p| p.into_inner())
}

/// The signature algorithms accepted: asymmetric ones only (RSA, ECDSA, EdDSA). A shared
/// secret in a key set would let anyone who can read the set mint tokens.
fn asymmetric(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    )
}

impl TokenVerifier {
    /// A verifier for `settings`.
    pub fn new(settings: OAuthSettings, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_WAIT)
            .connect_timeout(std::time::Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            // https only (plain http is allowed by the settings for loopback alone).
            .https_only(settings.jwks_url.scheme() == "https")
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                keys: Mutex::new(Keys::default()),
                clock,
            }),
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
        if header.alg != algorithm || !asymmetric(header.alg) {
            return Err("token algorithm does not match its key".into());
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.inner.settings.issuer]);
        // exp, nbf and aud are checked below: time from voxgate's clock, and audience
        // either as `aud` or as `client_id`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("invalid token: {e}"))?
            .claims;
        let now = self.inner.clock.now().unix_timestamp();
        if claims.exp + LEEWAY_SECONDS < now {
            return Err("token expired".into());
        }
        if claims.nbf.is_some_and(|nbf| nbf - LEEWAY_SECONDS > now) {
            return Err("token not yet valid".into());
        }
        if self.inner.settings.is_cognito() && claims.token_use.as_deref() != Some("access") {
            return Err("a Cognito token that is not an access token (token_use)".into());
        }
        let accepted = |v: &str| self.inner.settings.audiences.iter().any(|a| a == v);
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
        let now = self.inner.clock.now();
        let (known, fetch) = {
            let mut keys = lock(&self.inner.keys);
            let current = keys.current.clone();
            let usable = current
                .as_ref()
                .filter(|k| now - k.fetched < JWKS_MAX_AGE)
                .and_then(|k| k.keys.get(kid).cloned());
            let stale = current.as_ref().is_none_or(|k| now - k.fetched > JWKS_TTL);
            let unknown_kid = usable.is_none()
                && keys
                    .last_attempt
                    .is_none_or(|at| now - at >= JWKS_REFETCH_GAP);
            let backing_off = keys.retry_at.is_some_and(|at| at > now);
            let fetch = if (stale || unknown_kid) && !backing_off {
                Some(self.inner.fetch(&mut keys, now))
            } else {
                keys.fetching.clone()
            };
            (usable, fetch)
        };
        // A known key is used at once; a refresh (if one started) goes on without us.
        if let Some(known) = known {
            return Ok(known);
        }
        let Some(fetch) = fetch else {
            return Err(format!("no key '{kid}' in the JWKS"));
        };
        let fetched = tokio::time::timeout(FETCH_WAIT, fetch)
            .await
            .map_err(|_| "the JWKS did not arrive in time".to_owned())??;
        fetched
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| format!("no key '{kid}' in the JWKS"))
    }
}

impl Inner {
    /// The fetch in flight, or a new one (on its own task, so it finishes even if nobody
    /// waits for it any more).
    fn fetch(self: &Arc<Self>, keys: &mut Keys, now: OffsetDateTime) -> Fetch {
        if let Some(fetch) = &keys.fetching {
            return fetch.clone();
        }
        keys.last_attempt = Some(now);
        let inner = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = inner.download().await.map(Arc::new);
            inner.fetched(&result);
            result
        });
        let fetch: Fetch = task
            .map(|joined| joined.unwrap_or_else(|_| Err("the JWKS fetch failed".into())))
            .boxed()
            .shared();
        keys.fetching = Some(fetch.clone());
        fetch
    }

    fn fetched(&self, result: &Result<Arc<KeySet>, String>) {
        let now = self.clock.now();
        let mut keys = lock(&self.keys);
        keys.fetching = None;
        match result {
            Ok(set) => {
                keys.current = Some(Arc::clone(set));
                keys.retry_at = None;
                keys.backoff = None;
            }
            Err(error) => {
                let backoff = keys
                    .backoff
                    .map_or(FIRST_BACKOFF, |b: Duration| (b * 2_i32).min(MAX_BACKOFF));
                keys.backoff = Some(backoff);
                keys.retry_at = Some(now + backoff);
                warn!(
                    %error,
                    url = %self.settings.jwks_url,
                    retry_in_seconds = backoff.whole_seconds(),
                    "could not fetch the JWKS"
                );
            }
        }
    }

    async fn download(&self) -> Result<KeySet, String> {
        let mut response = self
            .http
            .get(self.settings.jwks_url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("the JWKS is larger than 64 KiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Encryption keys, symmetric keys, and keys of algorithms voxgate does not
            // accept are skipped, so one unusual key in the set does not break sign-in.
            let signing = jwk
                .common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
            let symmetric = matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            );
            if !signing || symmetric {
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
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => Algorithm::RS256,
                },
            };
            if asymmetric(algorithm) {
                keys.insert(kid, (key, algorithm));
            }
        }
        Ok(KeySet {
            keys,
            fetched: self.clock.now(),
        })
    }
}

/// Finds the user behind a request.
#[derive(Debug)]
pub struct Identity {
    store: Arc<dyn Store>,
    tokens: Option<TokenVerifier>,
    strangers: Strangers,
}

/// How often the enrol hint for one unknown Alexa user id is logged: once in a while, not
/// at every request (a stranger cannot flood the log, and a busy log stays readable).
const STRANGER_HINT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// When the enrol hint of each recently seen unknown Alexa user id was last logged. Who is
/// speaking is still looked up at every request: an enrolment or a removal counts at once.
struct Strangers(std::sync::Mutex<lru::LruCache<String, std::time::Instant>>);

impl std::fmt::Debug for Strangers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Strangers")
    }
}

impl Strangers {
    fn new() -> Self {
        Self(std::sync::Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(4096).expect("not zero"),
        )))
    }

    /// Records that `id` was found unknown; true if its hint should be logged now.
    fn hint_due(&self, id: &str) -> bool {
        let now = std::time::Instant::now();
        let mut hinted = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match hinted.get_mut(id) {
            Some(last) if last.elapsed() < STRANGER_HINT_EVERY => false,
            Some(last) => {
                *last = now;
                true
            }
            None => {
                hinted.put(id.to_owned(), now);
                true
            }
        }
    }
}

impl Identity {
    /// Identification by Alexa user id, or by OAuth token when `tokens` is set.
    pub fn new(store: Arc<dyn Store>, tokens: Option<TokenVerifier>) -> Self {
        Self {
            store,
            tokens,
            strangers: Strangers::new(),
        }
    }

    /// Who sent `envelope`.
    pub async fn who(&self, envelope: &RequestEnvelope) -> Result<Speaker, StoreError> {
        let Some(user) = envelope.user() else {
            return Ok(Speaker::Unknown(None));
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
                            "unknown user spoke; enrol with: voxgate user add --tenant TENANT \
                             --name NAME --oauth-subject {subject}"
                        );
                        Ok(Speaker::Unknown(Some(("--oauth-subject", subject))))
                    }
                }
            }
            None => match self.store.user_by_alexa_id(&user.user_id).await? {
                Some(known) => Ok(Speaker::Known(known)),
                None => {
                    if self.strangers.hint_due(&user.user_id) {
                        warn!(
                            "unknown user spoke; enrol with: voxgate user add --tenant \
                                 TENANT --name NAME --alexa-user-id {}",
                            user.user_id
                        );
                    }
                    Ok(Speaker::Unknown(Some((
                        "--alexa-user-id",
                        user.user_id.clone(),
                    ))))
                }
            },
        }
    }
}
