//! The records the store keeps, and the parsed names they are made of. Parse, don't
//! validate: once you hold a [`TenantName`] or [`AlexaUserId`], it is well-formed.

use std::fmt;

use serde::Serialize;

pub use crate::input::InvalidInput;

/// A sealed value as stored. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps bytes read from the store.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

fn check_name(kind: &str, raw: &str) -> Result<String, InvalidInput> {
    let name = raw.trim();
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !starts_well {
        return Err(InvalidInput(format!(
            "'{raw}' is not a valid {kind} name: use 1 to 64 letters, digits, spaces, '-', '_' \
             or '.', starting with a letter or digit"
        )));
    }
    Ok(name.to_owned())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Parses a name given by an operator.
            pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
                check_name($kind, raw).map(Self)
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A tenant's name, unique regardless of case.
    TenantName,
    "tenant"
);
name_type!(
    /// A user's name, unique within the tenant regardless of case.
    UserName,
    "user"
);
name_type!(
    /// A linked account's label ("prod"), unique within the tenant regardless of case.
    AccountName,
    "account"
);

macro_rules! id_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $ty(pub(crate) String);

        impl $ty {
            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Internal id of a tenant.
    TenantId
);
id_type!(
    /// Internal id of a user.
    UserId
);
id_type!(
    /// Internal id of a linked AWS account.
    AccountId
);

/// The `userId` Alexa sends for a person using the skill.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AlexaUserId(String);

impl AlexaUserId {
    /// Parses `amzn1.ask.account.…`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        let valid = raw.strip_prefix("amzn1.ask.account.").is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 512 && rest.chars().all(|c| c.is_ascii_graphic())
        });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput(format!(
                "'{raw}' is not an Alexa user id: they look like amzn1.ask.account.AEXAMPLE…, as \
                 logged by voxgate serve when an unknown user speaks"
            )))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `sub` of an OAuth access token from account linking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OAuthSubject(String);

impl OAuthSubject {
    /// Parses a non-empty subject of printable characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 255 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(InvalidInput(format!(
                "'{raw}' is not an OAuth subject: give the token's 'sub' claim (1 to 255 printable \
                 characters)"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The subject.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Internal id.
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A person who may use the skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Internal id.
    pub id: UserId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Name (shown in CloudTrail as the source identity).
    pub name: String,
    /// Alexa user id, if enrolled that way.
    pub alexa_user_id: Option<String>,
    /// OAuth subject, if enrolled that way.
    pub oauth_subject: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Name.
    pub name: UserName,
    /// Alexa user id.
    pub alexa_user_id: Option<AlexaUserId>,
    /// OAuth subject.
    pub oauth_subject: Option<OAuthSubject>,
}

/// A linked AWS account. Role ARN and ExternalId stay sealed here; only the broker opens
/// them, for the moment of an AssumeRole call.
#[derive(Debug, Clone)]
pub struct LinkedAccount {
    /// Internal id.
    pub id: AccountId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Label ("prod").
    pub name: String,
    /// Default region.
    pub region: String,
    /// Sealed role ARN.
    pub role_arn: Sealed,
    /// Sealed ExternalId.
    pub external_id: Sealed,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new linked account, already sealed.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Id chosen by the caller: it is part of the sealing context of the secrets.
    pub id: AccountId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Label.
    pub name: AccountName,
    /// Default region.
    pub region: String,
    /// Sealed role ARN.
    pub role_arn: Sealed,
    /// Sealed ExternalId.
    pub external_id: Sealed,
    /// SHA-256 (hex) of the ExternalId, for uniqueness.
    pub external_id_digest: String,
}

/// A held operation as stored. The gate gives it meaning; the store only keeps it and moves
/// it between states atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeRow {
    /// `c_…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User it belongs to.
    pub user_id: String,
    /// Linked account it acts in.
    pub account_id: String,
    /// The operation, as JSON.
    pub operation: String,
    /// Canonical summary.
    pub summary: String,
    /// Digest (hex).
    pub digest: String,
    /// State name.
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Wrong codes spoken for it.
    pub wrong_codes: i64,
    /// TOTP step of the code that approved it.
    pub used_step: Option<i64>,
    /// When it left `pending`.
    pub closed_at: Option<i64>,
}

/// A record of the audit log as stored. The store keeps records and hands out the chain's
/// head inside a transaction; what a record's hash is made of is the audit module's business
/// (see [`ChainSealer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// The challenge the record is about, if any.
    pub challenge_id: Option<String>,
    /// Who acted: `alexa-session:…`, `device:…`, `operator` or `voxgate`.
    pub actor: Option<String>,
    /// Summary.
    pub summary: String,
    /// Digest.
    pub digest: String,
    /// Outcome name.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// AWS request id.
    pub aws_request_id: Option<String>,
    /// Hash of the record before.
    pub prev_hash: String,
    /// Hash of this record.
    pub hash: String,
    /// How the hash was made (2: before challenge and actor were recorded; 3: with them).
    pub format: i64,
}

/// A decision to record, before it has a place in the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditDraft {
    /// Unix seconds.
    pub at: i64,
    /// Tenant id, if known.
    pub tenant_id: Option<String>,
    /// User id, if known.
    pub user_id: Option<String>,
    /// The challenge it is about, if any.
    pub challenge_id: Option<String>,
    /// Who acted.
    pub actor: Option<String>,
    /// The operation's canonical summary (or what the record is about).
    pub summary: String,
    /// The operation's digest (hex), or empty.
    pub digest: String,
    /// Outcome name.
    pub outcome: String,
    /// A short explanation (never a secret or a code).
    pub detail: String,
    /// AWS request id of the call, where there is one.
    pub aws_request_id: Option<String>,
}

/// Gives a draft its place in the chain: the record at `seq` after a record hashed
/// `prev_hash`. The audit module implements it with its chain key; the store calls it while
/// it holds the head, so the store never needs to know how hashes are made.
pub trait ChainSealer: Send + Sync {
    /// The complete record, hash included.
    fn seal(&self, draft: &AuditDraft, seq: i64, prev_hash: &str) -> AuditRecord;
}

/// A paired companion device (its token is kept only as a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// `d_…`.
    pub id: String,
    /// Whose device.
    pub user_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// How a removal went. A transaction that did not remove anything should be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed.
    Removed,
    /// There is no such record (or it was removed already).
    Missing,
    /// Operations on it are waiting for a code or running.
    Busy {
        /// How many.
        operations: i64,
    },
    /// The tenant still has users or accounts.
    NotEmpty {
        /// Users not removed.
        users: i64,
        /// Accounts not unlinked.
        accounts: i64,
    },
}

/// A fresh random id with a readable prefix, e.g. `t_3f9c…`.
pub fn new_id(prefix: &str) -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 12];
    // SystemRandom only fails if the OS has no randomness at all; nothing sensible is left.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        panic!("the operating system's random number generator failed");
    }
    format!("{prefix}_{}", hex::encode(bytes))
}

impl TenantId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(new_id("t"))
    }
}

impl UserId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(new_id("u"))
    }
}

impl AccountId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(new_id("a"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed() {
        assert_eq!(
            TenantName::parse("  acme-prod ").expect("ok").as_str(),
            "acme-prod"
        );
        for bad in ["", " ", "-x", "a/b", "x'; drop table", &"a".repeat(65)] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alexa_user_ids_are_parsed() {
        assert!(AlexaUserId::parse("amzn1.ask.account.AEXAMPLE").is_ok());
        for bad in ["", "amzn1.ask.account.", "bob", "amzn1.ask.skill.x"] {
            assert!(AlexaUserId::parse(bad).is_err(), "{bad}");
        }
    }
}
