//! Settings: the only place that reads the environment (through clap's `env` twins of every
//! flag). Flags are parsed into typed settings here; anything missing or invalid stops
//! start-up with a sentence that says what to set.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::alexa::chain::{ChainSource, TrustRoots};
use crate::cloud::sdk::{MAX_SESSION, MIN_SESSION};
use crate::identity::OAuthSettings;
use crate::store::DEFAULT_DATABASE_URL;

/// Where voxgate keeps its state; every command that touches it takes this.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: a SQLite file (sqlite://FILE or a plain path, created if missing) or
    /// PostgreSQL (postgres://USER@HOST:PORT/DB) for several replicas sharing state.
    #[arg(long, env = "VOXGATE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// How secrets are sealed at rest.
#[derive(Debug, Clone, Args)]
pub struct SealingArgs {
    /// KMS key (id, ARN or alias) for envelope encryption of secrets at rest. Without it,
    /// a local key file is used, which is for development only.
    #[arg(long, env = "VOXGATE_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,

    /// The local key file used when no KMS key is set (created with mode 0600 if missing).
    #[arg(
        long,
        env = "VOXGATE_LOCAL_KEY_FILE",
        default_value = "voxgate.key",
        value_name = "FILE"
    )]
    pub local_key_file: PathBuf,

    /// Append-only file of signed audit checkpoints, outside the database (default:
    /// voxgate.audit-checkpoints beside the local key file). Ship it off the machine.
    #[arg(long, env = "VOXGATE_AUDIT_CHECKPOINT_FILE", value_name = "FILE")]
    pub audit_checkpoint_file: Option<PathBuf>,
}

impl SealingArgs {
    /// Where audit checkpoints are written.
    pub fn checkpoint_file(&self) -> PathBuf {
        self.audit_checkpoint_file.clone().unwrap_or_else(|| {
            self.local_key_file
                .parent()
                .unwrap_or_else(|| std::path::Path::new(""))
                .join(crate::audit::checkpoint::DEFAULT_FILE_NAME)
        })
    }
}

/// How secrets are sealed, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealing {
    /// Envelope encryption under this KMS key.
    Kms(String),
    /// A local key file (development).
    LocalKeyFile(PathBuf),
}

impl SealingArgs {
    /// The sealing settings.
    pub fn sealing(&self) -> Sealing {
        match self.kms_key_id.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => Sealing::Kms(key.to_owned()),
            _ => Sealing::LocalKeyFile(self.local_key_file.clone()),
        }
    }
}

/// Account linking: when an issuer is set, requests must carry a valid access token.
#[derive(Debug, Clone, Args)]
pub struct OAuthArgs {
    /// Issuer (`iss`) of the access tokens from account linking, e.g. a Cognito user pool
    /// URL. Setting it makes a valid token mandatory.
    #[arg(long, env = "VOXGATE_OAUTH_ISSUER", value_name = "URL")]
    pub oauth_issuer: Option<String>,

    /// Accepted audience(s) (`aud`, or `client_id` for tokens without one), comma-separated.
    #[arg(long, env = "VOXGATE_OAUTH_AUDIENCE", value_delimiter = ',')]
    pub oauth_audience: Vec<String>,

    /// Where the issuer's signing keys are (default: ISSUER/.well-known/jwks.json).
    #[arg(long, env = "VOXGATE_OAUTH_JWKS_URL", value_name = "URL")]
    pub oauth_jwks_url: Option<String>,
}

/// An https URL, or http on a loopback host (for local tests).
fn secure_url(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (url.scheme() == "https" || (url.scheme() == "http" && loopback)).then_some(url)
}

impl OAuthArgs {
    /// The OAuth settings, if an issuer is set.
    pub fn oauth(&self) -> Result<Option<OAuthSettings>, ConfigError> {
        let Some(issuer) = self
            .oauth_issuer
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        else {
            return Ok(None);
        };
        if secure_url(issuer).is_none() {
            return Err(ConfigError::OAuth(format!(
                "'{issuer}' is not an https URL; set VOXGATE_OAUTH_ISSUER to the token issuer"
            )));
        }
        let audiences: Vec<String> = self
            .oauth_audience
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if audiences.is_empty() {
            return Err(ConfigError::OAuth(
                "an issuer is set but no audience: set --oauth-audience (VOXGATE_OAUTH_AUDIENCE) \
                 to the client id of the Alexa account-linking client"
                    .into(),
            ));
        }
        let jwks = self
            .oauth_jwks_url
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        let jwks_url = secure_url(&jwks).ok_or_else(|| {
            ConfigError::OAuth(format!(
                "'{jwks}' is not an https URL; set --oauth-jwks-url (VOXGATE_OAUTH_JWKS_URL)"
            ))
        })?;
        Ok(Some(OAuthSettings {
            issuer: issuer.to_owned(),
            audiences,
            jwks_url,
        }))
    }
}

/// Flags of `voxgate serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "VOXGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve GET /metrics (Prometheus) on this address only, instead of beside /alexa (so
    /// the figures stay inside your network), e.g. 0.0.0.0:9090.
    #[arg(long, env = "VOXGATE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Alexa skill id(s) whose requests are accepted (comma-separated or repeated), as shown
    /// in the Alexa developer console: amzn1.ask.skill.…
    #[arg(long = "skill-id", env = "VOXGATE_SKILL_ID", value_delimiter = ',')]
    pub skill_ids: Vec<String>,

    /// Skip signature, certificate, timestamp and replay checks, for local tools that cannot
    /// sign requests. Refused unless --listen is a loopback address; the skill id is still
    /// required and checked, and requests that came through a proxy are refused.
    #[arg(long, env = "VOXGATE_INSECURE_SKIP_VERIFICATION")]
    pub insecure_skip_verification: bool,

    /// Allow sealing secrets with the local key file on a non-loopback address (refused
    /// otherwise: in production, set --kms-key-id).
    #[arg(long, env = "VOXGATE_INSECURE_LOCAL_KEY")]
    pub insecure_local_key: bool,

    /// PEM bundle of root certificates that replaces the built-in roots for the Alexa
    /// signing certificate chain.
    #[arg(long, env = "VOXGATE_ALEXA_TRUST_ROOTS", value_name = "FILE")]
    pub alexa_trust_roots: Option<PathBuf>,

    /// Directory of pre-fetched signing chains, named `<hex SHA-256 of the normalised
    /// SignatureCertChainUrl>.pem`; when set, chains are never fetched.
    #[arg(long, env = "VOXGATE_ALEXA_CERT_DIR", value_name = "DIR")]
    pub alexa_cert_dir: Option<PathBuf>,

    /// The tag that marks instances voxgate may change; others are refused before anything
    /// is held. Must match the condition in deploy/customer-role.yaml.
    #[arg(
        long,
        env = "VOXGATE_MANAGED_TAG",
        default_value = "voxgate:managed=true",
        value_name = "KEY=VALUE"
    )]
    pub managed_tag: String,

    /// How many days old an unused snapshot must be before the cleanup report lists it
    /// (0 to 3650).
    #[arg(
        long,
        env = "VOXGATE_CLEANUP_SNAPSHOT_AGE_DAYS",
        default_value_t = 90,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u16).range(0..=3650)
    )]
    pub cleanup_snapshot_age_days: u16,

    /// Active access keys older than this many days are reported by the security check.
    #[arg(
        long,
        env = "VOXGATE_SECURITY_KEY_AGE_DAYS",
        default_value_t = 90,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u16).range(0..=3650)
    )]
    pub security_key_age_days: u16,

    /// How long a held operation waits for its code, in seconds (30 to 3600).
    #[arg(
        long,
        env = "VOXGATE_CHALLENGE_TTL",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub challenge_ttl: u32,

    /// Lifetime of the STS sessions voxgate asks for, in seconds (900 to 3600).
    #[arg(
        long,
        env = "VOXGATE_SESSION_DURATION",
        default_value_t = 900,
        value_name = "SECONDS"
    )]
    pub session_duration: u32,

    /// STS sessions kept in memory at most (encrypted, about 1.5 KB each); beyond it the
    /// earliest-expiring are dropped and asked for again when needed.
    #[arg(
        long,
        env = "VOXGATE_CACHED_SESSIONS",
        default_value_t = crate::cloud::broker::DEFAULT_CACHED_SESSIONS,
        value_name = "N"
    )]
    pub cached_sessions: usize,

    /// Open connections at most; more are closed as soon as they are accepted.
    #[arg(
        long,
        env = "VOXGATE_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_name = "N"
    )]
    pub max_connections: usize,

    /// `/alexa` requests handled at once; more are answered 503 at once.
    #[arg(
        long,
        env = "VOXGATE_MAX_REQUESTS",
        default_value_t = 512,
        value_name = "N"
    )]
    pub max_requests: usize,

    /// Seconds a connection has to send a request's head (also when idle between requests).
    #[arg(
        long,
        env = "VOXGATE_HEADER_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub header_timeout: u64,

    /// Seconds a client has to send a request's whole body.
    #[arg(
        long,
        env = "VOXGATE_BODY_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub body_timeout: u64,

    /// Database.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Sealing of secrets at rest.
    #[command(flatten)]
    pub sealing: SealingArgs,

    /// Account linking.
    #[command(flatten)]
    pub oauth: OAuthArgs,
}

/// What the HTTP server allows a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// `/alexa` requests in flight at most.
    pub max_requests: usize,
    /// Time to send a request head.
    pub header_timeout: std::time::Duration,
    /// Time to send a whole body.
    pub body_timeout: std::time::Duration,
}

/// Logging flags, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `voxgate=debug,info`.
    #[arg(
        long = "log",
        env = "VOXGATE_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,

    /// Log format.
    #[arg(long, env = "VOXGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A skill id as the Alexa developer console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillId(String);

impl SkillId {
    /// Parses `amzn1.ask.skill.<id>` (or the legacy `amzn1.echo-sdk-ams.app.<id>`).
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        let valid_prefix = ["amzn1.ask.skill.", "amzn1.echo-sdk-ams.app."]
            .iter()
            .find_map(|p| raw.strip_prefix(p))
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            });
        if valid_prefix {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ConfigError::BadSkillId(raw.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A setting that stops start-up, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No skill id and verification on.
    #[error(
        "no Alexa skill id is set: set --skill-id (or VOXGATE_SKILL_ID) to the id of your skill \
         from the Alexa developer console, e.g. amzn1.ask.skill.00000000-0000-0000-0000-000000000000"
    )]
    MissingSkillId,
    /// A skill id of the wrong shape.
    #[error(
        "'{0}' is not an Alexa skill id: set --skill-id (or VOXGATE_SKILL_ID) to an id of the \
         form amzn1.ask.skill.<uuid>, as shown in the Alexa developer console"
    )]
    BadSkillId(String),
    /// Skipping verification on a non-loopback address.
    #[error(
        "--insecure-skip-verification is only allowed on a loopback address, but --listen is \
         {0}: listen on 127.0.0.1 (or ::1), or drop the flag and set --skill-id"
    )]
    InsecureNotLoopback(SocketAddr),
    /// The trust-roots bundle cannot be used.
    #[error(
        "the Alexa trust roots file {path} cannot be used: {reason}; set --alexa-trust-roots \
         (VOXGATE_ALEXA_TRUST_ROOTS) to a PEM bundle of root certificates, or unset it to use \
         the built-in roots"
    )]
    TrustRoots {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// STS session lifetime out of range.
    #[error(
        "--session-duration {0} is out of range: set it (VOXGATE_SESSION_DURATION) to between \
         900 and 3600 seconds"
    )]
    SessionDuration(u32),
    /// The session cache's size out of range.
    #[error(
        "--cached-sessions {0} is out of range: set it (VOXGATE_CACHED_SESSIONS) to between \
         100 and 10000000"
    )]
    CachedSessions(usize),
    /// The managed tag is not KEY=VALUE.
    #[error("{0}")]
    ManagedTag(String),
    /// Challenge lifetime out of range.
    #[error(
        "--challenge-ttl {0} is out of range: set it (VOXGATE_CHALLENGE_TTL) to between 30 and \
         3600 seconds"
    )]
    ChallengeTtl(u32),
    /// OAuth settings incomplete or invalid.
    #[error("account linking settings: {0}")]
    OAuth(String),
    /// A local key file on a non-loopback address.
    #[error(
        "--listen {0} is reachable from other machines, but secrets would be sealed with the \
         local key file, which is for development only: set --kms-key-id (VOXGATE_KMS_KEY_ID) \
         to seal with AWS KMS, or add --insecure-local-key (VOXGATE_INSECURE_LOCAL_KEY=true) \
         if you accept the risk"
    )]
    LocalKeyNotLoopback(SocketAddr),
    /// A limit of the HTTP server out of range.
    #[error("{0}")]
    HttpLimit(String),
    /// The cert directory is missing.
    #[error(
        "the Alexa certificate directory {0} does not exist or is not a directory: create it, \
         or unset --alexa-cert-dir (VOXGATE_ALEXA_CERT_DIR) to fetch chains over HTTPS"
    )]
    CertDir(PathBuf),
}

/// How `/alexa` requests are verified.
#[derive(Debug)]
pub enum Verification {
    /// Every rule applies.
    Enforce {
        /// Roots the signing chain must lead to.
        roots: TrustRoots,
        /// Where chains come from.
        source: ChainSource,
    },
    /// Signature checks skipped (loopback only).
    InsecureSkip,
}

/// Typed settings of the skill service.
#[derive(Debug)]
pub struct Settings {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to serve /metrics on its own, if not beside /alexa.
    pub metrics_listen: Option<SocketAddr>,
    /// Accepted skill ids (may be empty only when verification is skipped).
    pub skill_ids: Vec<SkillId>,
    /// How requests are verified.
    pub verification: Verification,
    /// The database URL.
    pub database_url: String,
    /// How secrets are sealed.
    pub sealing: Sealing,
    /// Lifetime of STS sessions.
    pub session_duration: time::Duration,
    /// STS sessions kept in memory at most.
    pub cached_sessions: usize,
    /// Account linking, if configured.
    pub oauth: Option<OAuthSettings>,
    /// The tag that marks instances voxgate may change.
    pub managed_tag: crate::ops::ManagedTag,
    /// How old an unused snapshot must be to count in the cleanup report, in days.
    pub cleanup_snapshot_age_days: i64,
    /// How old an active access key must be to count in the security check, in days.
    pub security_key_age_days: i64,
    /// How long a held operation waits for its code.
    pub challenge_ttl: time::Duration,
    /// Where signed audit checkpoints go.
    pub audit_checkpoint_file: PathBuf,
    /// What the HTTP server allows a client.
    pub http: HttpLimits,
}

impl ServeArgs {
    /// The flags `serve` would take with none given, on loopback port 0, for a process that
    /// builds its own service (the demo, the tests): `database_url` and `local_key_file` as
    /// given, no skill id and no trust roots yet.
    pub fn local(database_url: String, local_key_file: PathBuf) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            metrics_listen: None,
            skill_ids: vec![],
            insecure_skip_verification: false,
            insecure_local_key: false,
            alexa_trust_roots: None,
            alexa_cert_dir: None,
            session_duration: 900,
            cached_sessions: crate::cloud::broker::DEFAULT_CACHED_SESSIONS,
            managed_tag: "voxgate:managed=true".into(),
            cleanup_snapshot_age_days: 90,
            security_key_age_days: 90,
            challenge_ttl: 300,
            max_connections: 4096,
            max_requests: 512,
            header_timeout: 10,
            body_timeout: 10,
            database: DatabaseArgs { database_url },
            sealing: SealingArgs {
                kms_key_id: None,
                local_key_file,
                audit_checkpoint_file: None,
            },
            oauth: OAuthArgs {
                oauth_issuer: None,
                oauth_audience: vec![],
                oauth_jwks_url: None,
            },
        }
    }

    /// Checks the flags and turns them into settings.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let skill_ids = self
            .skill_ids
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| SkillId::parse(s))
            .collect::<Result<Vec<_>, _>>()?;

        // The skill id is checked in every mode: without it, any skill's requests (or a
        // local tool's, made up) would be answered.
        if skill_ids.is_empty() {
            return Err(ConfigError::MissingSkillId);
        }
        let verification = if self.insecure_skip_verification {
            if !self.listen.ip().is_loopback() {
                return Err(ConfigError::InsecureNotLoopback(self.listen));
            }
            Verification::InsecureSkip
        } else {
            let roots = match &self.alexa_trust_roots {
                Some(path) => {
                    TrustRoots::from_pem_file(path).map_err(|reason| ConfigError::TrustRoots {
                        path: path.clone(),
                        reason,
                    })?
                }
                None => TrustRoots::builtin(),
            };
            let source = match self.alexa_cert_dir {
                Some(dir) if dir.is_dir() => ChainSource::Directory(dir),
                Some(dir) => return Err(ConfigError::CertDir(dir)),
                None => ChainSource::Fetch,
            };
            Verification::Enforce { roots, source }
        };

        let sealing = self.sealing.sealing();
        if matches!(sealing, Sealing::LocalKeyFile(_))
            && !self.listen.ip().is_loopback()
            && !self.insecure_local_key
        {
            return Err(ConfigError::LocalKeyNotLoopback(self.listen));
        }
        let http = HttpLimits {
            max_connections: self.max_connections,
            max_requests: self.max_requests,
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
        };
        if !(16..=1_000_000).contains(&self.max_connections) {
            return Err(ConfigError::HttpLimit(format!(
                "--max-connections {} is out of range: set it (VOXGATE_MAX_CONNECTIONS) to \
                 between 16 and 1000000",
                self.max_connections
            )));
        }
        if !(1..=100_000).contains(&self.max_requests) {
            return Err(ConfigError::HttpLimit(format!(
                "--max-requests {} is out of range: set it (VOXGATE_MAX_REQUESTS) to between 1 \
                 and 100000",
                self.max_requests
            )));
        }
        for (flag, env, value) in [
            (
                "--header-timeout",
                "VOXGATE_HEADER_TIMEOUT",
                self.header_timeout,
            ),
            ("--body-timeout", "VOXGATE_BODY_TIMEOUT", self.body_timeout),
        ] {
            if !(1..=300).contains(&value) {
                return Err(ConfigError::HttpLimit(format!(
                    "{flag} {value} is out of range: set it ({env}) to between 1 and 300 seconds"
                )));
            }
        }
        let seconds = i64::from(self.session_duration);
        if seconds < MIN_SESSION.whole_seconds() || seconds > MAX_SESSION.whole_seconds() {
            return Err(ConfigError::SessionDuration(self.session_duration));
        }
        if !(100..=10_000_000).contains(&self.cached_sessions) {
            return Err(ConfigError::CachedSessions(self.cached_sessions));
        }
        let managed_tag =
            crate::ops::ManagedTag::parse(&self.managed_tag).map_err(ConfigError::ManagedTag)?;
        if !(30..=3600).contains(&self.challenge_ttl) {
            return Err(ConfigError::ChallengeTtl(self.challenge_ttl));
        }
        Ok(Settings {
            managed_tag,
            cleanup_snapshot_age_days: i64::from(self.cleanup_snapshot_age_days),
            security_key_age_days: i64::from(self.security_key_age_days),
            challenge_ttl: time::Duration::seconds(i64::from(self.challenge_ttl)),
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            skill_ids,
            verification,
            database_url: self.database.database_url,
            audit_checkpoint_file: self.sealing.checkpoint_file(),
            http,
            sealing,
            session_duration: time::Duration::seconds(seconds),
            cached_sessions: self.cached_sessions,
            oauth: self.oauth.oauth()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs::local(DEFAULT_DATABASE_URL.into(), "voxgate.key".into())
    }

    #[test]
    fn session_duration_must_be_between_15_minutes_and_an_hour() {
        for (seconds, ok) in [(899, false), (900, true), (3600, true), (3601, false)] {
            let mut a = args();
            a.insecure_skip_verification = true;
            a.skill_ids = vec!["amzn1.ask.skill.x".into()];
            a.session_duration = seconds;
            assert_eq!(a.into_settings().is_ok(), ok, "{seconds}");
        }
    }

    #[test]
    fn the_session_cache_has_a_sane_size() {
        for (n, ok) in [
            (0, false),
            (99, false),
            (100, true),
            (10_000_000, true),
            (10_000_001, false),
        ] {
            let mut a = args();
            a.insecure_skip_verification = true;
            a.skill_ids = vec!["amzn1.ask.skill.x".into()];
            a.cached_sessions = n;
            match a.into_settings() {
                Ok(settings) => {
                    assert!(ok, "{n} was accepted");
                    assert_eq!(settings.cached_sessions, n);
                }
                Err(e) => {
                    assert!(!ok, "{n} was refused: {e}");
                    assert!(e.to_string().contains("VOXGATE_CACHED_SESSIONS"), "{e}");
                }
            }
        }
    }

    #[test]
    fn oauth_needs_an_audience_and_defaults_the_jwks_url() {
        let mut a = args();
        a.oauth.oauth_issuer = Some("https://issuer.example/pool".into());
        let err = a.oauth.oauth().expect_err("no audience");
        assert!(err.to_string().contains("VOXGATE_OAUTH_AUDIENCE"), "{err}");
        a.oauth.oauth_audience = vec!["client-1".into()];
        let oauth = a.oauth.oauth().expect("ok").expect("set");
        assert_eq!(
            oauth.jwks_url.as_str(),
            "https://issuer.example/pool/.well-known/jwks.json"
        );
        a.oauth.oauth_issuer = Some("http://issuer.example".into());
        assert!(
            a.oauth.oauth().is_err(),
            "plain http off loopback is refused"
        );
    }

    #[test]
    fn skill_ids_are_parsed_not_trusted() {
        assert!(SkillId::parse("amzn1.ask.skill.89751fb9-1ed2-4ab0-9f2d-1d2c1b0e6a1f").is_ok());
        assert!(
            SkillId::parse("amzn1.echo-sdk-ams.app.000000-d0ed-0000-ad00-000000d00ebe").is_ok()
        );
        for bad in [
            "",
            "amzn1.ask.skill.",
            "skill-123",
            "amzn1.ask.skill.a b",
            "amzn1.ask.account.x",
        ] {
            assert!(SkillId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verification_needs_a_skill_id() {
        let err = args().into_settings().expect_err("no skill id");
        assert!(err.to_string().contains("--skill-id"), "{err}");
    }

    #[test]
    fn skipping_verification_needs_loopback_and_still_a_skill_id() {
        let mut a = args();
        a.insecure_skip_verification = true;
        let err = a.clone().into_settings().expect_err("no skill id");
        assert!(err.to_string().contains("--skill-id"), "{err}");
        a.skill_ids = vec!["amzn1.ask.skill.local".into()];
        assert!(matches!(
            a.clone().into_settings(),
            Ok(Settings {
                verification: Verification::InsecureSkip,
                ..
            })
        ));
        a.listen = "0.0.0.0:8080".parse().expect("addr");
        let err = a.into_settings().expect_err("not loopback");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn the_local_key_file_is_refused_off_loopback_unless_accepted() {
        let mut a = args();
        a.skill_ids = vec!["amzn1.ask.skill.x".into()];
        a.alexa_cert_dir = Some(std::env::temp_dir());
        a.listen = "0.0.0.0:8080".parse().expect("addr");
        let err = a
            .clone()
            .into_settings()
            .expect_err("local key off loopback");
        assert!(err.to_string().contains("set --kms-key-id"), "{err}");
        let mut accepted = a.clone();
        accepted.insecure_local_key = true;
        assert!(accepted.into_settings().is_ok());
        let mut kms = a;
        kms.sealing.kms_key_id = Some("alias/voxgate".into());
        assert!(kms.into_settings().is_ok());
    }
}
