//! Settings: the only place that reads the environment (through clap's `env` twins of every
//! flag). Flags are parsed into typed settings here; anything missing or invalid stops
//! start-up with a sentence that says what to set.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::alexa::chain::{ChainSource, TrustRoots};

/// Flags of `voxgate serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "VOXGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Alexa skill id(s) whose requests are accepted (comma-separated or repeated), as shown
    /// in the Alexa developer console: amzn1.ask.skill.…
    #[arg(long = "skill-id", env = "VOXGATE_SKILL_ID", value_delimiter = ',')]
    pub skill_ids: Vec<String>,

    /// Skip signature, certificate, timestamp and replay checks, for local tools that cannot
    /// sign requests. Refused unless --listen is a loopback address.
    #[arg(long, env = "VOXGATE_INSECURE_SKIP_VERIFICATION")]
    pub insecure_skip_verification: bool,

    /// PEM bundle of root certificates that replaces the built-in roots for the Alexa
    /// signing certificate chain.
    #[arg(long, env = "VOXGATE_ALEXA_TRUST_ROOTS", value_name = "FILE")]
    pub alexa_trust_roots: Option<PathBuf>,

    /// Directory of pre-fetched signing chains, named `<hex SHA-256 of the normalised
    /// SignatureCertChainUrl>.pem`; when set, chains are never fetched.
    #[arg(long, env = "VOXGATE_ALEXA_CERT_DIR", value_name = "DIR")]
    pub alexa_cert_dir: Option<PathBuf>,
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
    /// Accepted skill ids (may be empty only when verification is skipped).
    pub skill_ids: Vec<SkillId>,
    /// How requests are verified.
    pub verification: Verification,
}

impl ServeArgs {
    /// Checks the flags and turns them into settings.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let skill_ids = self
            .skill_ids
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| SkillId::parse(s))
            .collect::<Result<Vec<_>, _>>()?;

        let verification = if self.insecure_skip_verification {
            if !self.listen.ip().is_loopback() {
                return Err(ConfigError::InsecureNotLoopback(self.listen));
            }
            Verification::InsecureSkip
        } else {
            if skill_ids.is_empty() {
                return Err(ConfigError::MissingSkillId);
            }
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

        Ok(Settings {
            listen: self.listen,
            skill_ids,
            verification,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            skill_ids: vec![],
            insecure_skip_verification: false,
            alexa_trust_roots: None,
            alexa_cert_dir: None,
        }
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
    fn skipping_verification_needs_loopback() {
        let mut a = args();
        a.insecure_skip_verification = true;
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
}
