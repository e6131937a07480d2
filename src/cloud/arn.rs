//! AWS names voxgate takes from operators or generates: role ARNs, regions, ExternalIds.
//! Parsed once; a value of these types is well-formed.

use std::fmt;

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};

use crate::input::InvalidInput;

/// An IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleArn {
    arn: String,
    account: String,
}

fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-')
}

impl RoleArn {
    /// Parses a role ARN.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        let bad = || {
            InvalidInput(format!(
                "'{raw}' is not an IAM role ARN: it should look like \
                 arn:aws:iam::123456789012:role/voxgate-access"
            ))
        };
        let rest = raw.strip_prefix("arn:").ok_or_else(bad)?;
        let (partition, rest) = rest.split_once(':').ok_or_else(bad)?;
        if partition != "aws" {
            // Sessions, policies and resource ARNs are built for the commercial partition;
            // a role in aws-cn or aws-us-gov would be half supported, so it is refused.
            if partition.starts_with("aws-") {
                return Err(InvalidInput(format!(
                    "'{raw}' is a role in the {partition} partition; voxgate works with the \
                     commercial AWS partition (arn:aws:…) only, so link a role in an aws \
                     account instead"
                )));
            }
            return Err(bad());
        }
        let rest = rest.strip_prefix("iam::").ok_or_else(bad)?;
        let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let path_and_name = resource.strip_prefix("role/").ok_or_else(bad)?;
        let name = path_and_name.rsplit('/').next().unwrap_or("");
        let path_ok = path_and_name.chars().all(|c| iam_name_char(c) || c == '/');
        if name.is_empty()
            || name.len() > 64
            || !path_ok
            || raw.len() > 2048
            || path_and_name.contains("//")
        {
            return Err(bad());
        }
        Ok(Self {
            arn: raw.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The role's name, after its path.
    pub fn name(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or_default()
    }

    /// The role's path: `/` or e.g. `/ops/team/`.
    pub fn path(&self) -> String {
        let resource = self.arn.split_once(":role").map_or("/", |(_, r)| r);
        let end = resource.rfind('/').unwrap_or(0);
        resource[..=end].to_owned()
    }

    /// The 12-digit account the role lives in.
    pub fn account(&self) -> &str {
        &self.account
    }
}

/// Role ARNs are sealed at rest; keep them out of logs too.
impl fmt::Debug for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoleArn(<redacted>)")
    }
}

/// An AWS region code, e.g. `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    /// Parses a region code.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        let parts: Vec<&str> = raw.split('-').collect();
        let valid = parts.len() >= 3
            && parts[0].len() == 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput(format!(
                "'{raw}' is not an AWS region code: use one like eu-west-1 or us-east-1"
            )))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a region code that must be one voxgate knows (an account's default region:
    /// a typo there would fail every request later).
    pub fn known(raw: &str) -> Result<Self, InvalidInput> {
        let region = Self::parse(raw)?;
        if REGION_NAMES
            .iter()
            .any(|(code, _)| *code == region.as_str())
        {
            return Ok(region);
        }
        let codes: Vec<&str> = REGION_NAMES.iter().map(|(code, _)| *code).collect();
        Err(InvalidInput(format!(
            "'{}' is not an AWS region voxgate knows; the known regions are {}",
            region.as_str(),
            codes.join(", ")
        )))
    }

    /// The region people call `spoken` ("Ireland", "north virginia"), if voxgate knows it.
    pub fn from_spoken_name(spoken: &str) -> Option<Self> {
        let wanted = simple(spoken);
        REGION_NAMES
            .iter()
            .find(|(_, name)| simple(name) == wanted)
            .map(|(code, _)| Self((*code).to_owned()))
    }

    /// The name people say for the region `code` ("Ireland" for `eu-west-1`), if voxgate
    /// knows one.
    pub fn spoken_name(code: &str) -> Option<&'static str> {
        REGION_NAMES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, name)| *name)
    }

    /// The region as it is said: its name, else its code.
    pub fn words(code: &str) -> String {
        Self::spoken_name(code).unwrap_or(code).to_owned()
    }
}

/// Regions and the names people say for them (the interaction model's `AWS_REGION` type
/// lists the same ones, with more synonyms).
pub const REGION_NAMES: &[(&str, &str)] = &[
    ("us-east-1", "North Virginia"),
    ("us-east-2", "Ohio"),
    ("us-west-1", "North California"),
    ("us-west-2", "Oregon"),
    ("ca-central-1", "Canada"),
    ("ca-west-1", "Calgary"),
    ("mx-central-1", "Mexico"),
    ("sa-east-1", "Sao Paulo"),
    ("eu-west-1", "Ireland"),
    ("eu-west-2", "London"),
    ("eu-west-3", "Paris"),
    ("eu-central-1", "Frankfurt"),
    ("eu-central-2", "Zurich"),
    ("eu-north-1", "Stockholm"),
    ("eu-south-1", "Milan"),
    ("eu-south-2", "Spain"),
    ("il-central-1", "Tel Aviv"),
    ("me-south-1", "Bahrain"),
    ("me-central-1", "UAE"),
    ("af-south-1", "Cape Town"),
    ("ap-east-1", "Hong Kong"),
    ("ap-south-1", "Mumbai"),
    ("ap-south-2", "Hyderabad"),
    ("ap-northeast-1", "Tokyo"),
    ("ap-northeast-2", "Seoul"),
    ("ap-northeast-3", "Osaka"),
    ("ap-southeast-1", "Singapore"),
    ("ap-southeast-2", "Sydney"),
    ("ap-southeast-3", "Jakarta"),
    ("ap-southeast-4", "Melbourne"),
    ("ap-southeast-5", "Malaysia"),
    ("ap-southeast-7", "Thailand"),
];

fn simple(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ExternalId the customer's role trust policy requires. Always generated by voxgate
/// (256 random bits, 43 characters), never taken from request input. `Debug` redacts it.
#[derive(Clone)]
pub struct ExternalId(SecretString);

impl ExternalId {
    /// A fresh random ExternalId.
    pub fn generate() -> Result<Self, InvalidInput> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| InvalidInput("no randomness available".into()))?;
        Ok(Self(SecretString::from(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        )))
    }

    /// Rebuilds an ExternalId opened from the store.
    pub fn from_opened(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The value, for the one place that sends it (AssumeRole) or shows it (account link).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// SHA-256 (hex), for the uniqueness index.
    pub fn digest(&self) -> String {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.expose().as_bytes(),
        ))
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExternalId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_parsed() {
        let arn = RoleArn::parse("arn:aws:iam::111122223333:role/voxgate-access").expect("ok");
        assert_eq!(arn.account(), "111122223333");
        assert_eq!((arn.name(), arn.path().as_str()), ("voxgate-access", "/"));
        let nested = RoleArn::parse("arn:aws:iam::111122223333:role/ops/team/voxgate").expect("ok");
        assert_eq!(
            (nested.name(), nested.path().as_str()),
            ("voxgate", "/ops/team/")
        );
        assert!(RoleArn::parse("arn:aws:iam::111122223333:role/ops/team/voxgate").is_ok());
        for bad in [
            "",
            "voxgate-access",
            "arn:aws:iam::1111:role/x",
            "arn:aws:iam::111122223333:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::111122223333:role/",
            "arn:evil:iam::111122223333:role/x",
            "arn:aws-cn:iam::111122223333:role/x",
            "arn:aws-us-gov:iam::111122223333:role/x",
            "arn:aws:iam::111122223333:role/a b",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{arn:?}"), "RoleArn(<redacted>)");
        let china = RoleArn::parse("arn:aws-cn:iam::111122223333:role/x").expect_err("refused");
        assert!(
            china
                .to_string()
                .contains("commercial AWS partition (arn:aws:…) only"),
            "{china}"
        );
    }

    #[test]
    fn regions_are_parsed() {
        for ok in ["eu-west-1", "us-east-1", "us-gov-west-1", "ap-southeast-2"] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ireland", "EU-WEST-1", "eu-west", "eu-west-x"] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_ids_are_long_random_and_redacted() {
        let a = ExternalId::generate().expect("a");
        let b = ExternalId::generate().expect("b");
        assert!(a.expose().len() >= 32);
        assert_ne!(a.expose(), b.expose());
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(format!("{a:?}"), "ExternalId(<redacted>)");
    }
}
