//! The companion app's side of voxgate: pairing a device to a user with a one-time code,
//! device tokens, and the API the app uses (pending challenges with their current code,
//! live events, deny), and the page itself (`GET /app`).
//!
//! Device tokens (256 random bits) are kept only as SHA-256 hashes. Pairing codes are short
//! (for typing), single use and valid 10 minutes; they are kept as an HMAC under a sealed
//! key, so reading the database does not let anyone try all 2^40 codes.

pub mod api;
pub mod limit;
pub mod page;

use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::audit::{Actor, AuditLog, Entry, Outcome, Unrecorded};
use crate::store::{Store, StoreError, User};

/// How long a pairing code works.
pub const PAIRING_CODE_TTL: Duration = Duration::minutes(10);
/// Letters and digits that cannot be mistaken for one another.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// SHA-256 (hex) of a high-entropy secret (a device token), as stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(digest(&SHA256, secret.as_bytes()))
}

/// The key pairing codes are stored under.
#[derive(Clone)]
pub struct PairingKey(hmac::Key);

impl std::fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingKey(<redacted>)")
    }
}

impl PairingKey {
    /// The deployment's pairing key (made and sealed on first use).
    pub async fn load(
        store: &dyn Store,
        sealer: &crate::cloud::seal::Sealer,
    ) -> Result<Self, crate::cloud::ServiceKeyError> {
        let key = crate::cloud::service_key(store, sealer, "pairing-code-key").await?;
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }

    /// What is stored for `code` (already normalised).
    fn hash(&self, code: &str) -> String {
        hex::encode(hmac::sign(&self.0, code.as_bytes()).as_ref())
    }
}

/// A pairing code as typed: case, spaces and dashes do not matter.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::NotFound("randomness".into()))?;
    Ok(bytes)
}

/// Why pairing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log could not record it, so it was not done.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

fn entry(
    user: &User,
    outcome: Outcome,
    summary: String,
    detail: &str,
    actor: Actor,
    at: i64,
) -> Entry {
    Entry {
        at,
        tenant_id: Some(user.tenant_id.as_str().to_owned()),
        user_id: Some(user.id.as_str().to_owned()),
        challenge_id: None,
        actor,
        summary,
        digest: String::new(),
        outcome,
        detail: detail.to_owned(),
        aws_request_id: None,
    }
}

/// Issues a one-time pairing code for `user` (8 characters, about 40 bits, shown as
/// `XXXX-XXXX`), valid for [`PAIRING_CODE_TTL`]. The user's older unused codes stop working;
/// both are audited.
pub async fn issue_pairing_code(
    store: &dyn Store,
    audit: &AuditLog,
    key: &PairingKey,
    user: &User,
    now: OffsetDateTime,
) -> Result<String, PairingError> {
    let bytes = random_bytes::<8>()?;
    let code: String = bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect();
    let mut tx = store.begin().await?;
    let voided = tx
        .add_pairing_code(
            &key.hash(&code),
            &user.id,
            (now + PAIRING_CODE_TTL).unix_timestamp(),
            now.unix_timestamp(),
        )
        .await?;
    let detail = match voided {
        0 => String::new(),
        1 => "the older unused code no longer works".to_owned(),
        n => format!("{n} older unused codes no longer work"),
    };
    audit
        .commit_with(
            tx,
            &entry(
                user,
                Outcome::PairingCodeIssued,
                format!("Pairing code for {}", user.name),
                &detail,
                Actor::Operator,
                now.unix_timestamp(),
            ),
        )
        .await?;
    Ok(format!("{}-{}", &code[..4], &code[4..]))
}

/// A freshly paired device. `Debug` hides the token.
pub struct Paired {
    /// The device token (shown once, to the device).
    pub token: String,
    /// The device's id.
    pub device_id: String,
    /// Whose device it is.
    pub user: User,
}

impl std::fmt::Debug for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paired")
            .field("device_id", &self.device_id)
            .field("user", &self.user.name)
            .finish_non_exhaustive()
    }
}

/// Pairs a device with `code` from `source`: `None` if the code is unknown, used, voided
/// or expired (the failed attempt is audited). The device and its record are written
/// together.
pub async fn pair(
    store: &dyn Store,
    audit: &AuditLog,
    key: &PairingKey,
    code: &str,
    now: OffsetDateTime,
    source: &str,
) -> Result<Option<Paired>, PairingError> {
    let mut tx = store.begin().await?;
    let used = tx
        .use_pairing_code(&key.hash(&normalise_code(code)), now.unix_timestamp())
        .await?;
    let user = match used {
        Some(user_id) => store.user(&user_id).await?,
        None => None,
    };
    let Some(user) = user else {
        tx.rollback().await?;
        let _ = audit
            .append(&Entry {
                at: now.unix_timestamp(),
                tenant_id: None,
                user_id: None,
                challenge_id: None,
                actor: Actor::Source(source.to_owned()),
                summary: "Pairing attempt".into(),
                digest: String::new(),
                outcome: Outcome::PairingFailed,
                detail: "unknown, used, voided or expired code".into(),
                aws_request_id: None,
            })
            .await;
        return Ok(None);
    };
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let device_id = crate::store::new_id("d");
    tx.add_device(
        &device_id,
        &user.id,
        &secret_hash(&token),
        now.unix_timestamp(),
    )
    .await?;
    audit
        .commit_with(
            tx,
            &entry(
                &user,
                Outcome::Paired,
                format!("Paired device {device_id} for {}", user.name),
                &format!("from {source}"),
                Actor::Device(device_id.clone()),
                now.unix_timestamp(),
            ),
        )
        .await?;
    Ok(Some(Paired {
        token,
        device_id,
        user,
    }))
}

/// Revokes `device_id` of `user`; `Unpaired` when the device asked, `DeviceRevoked` when
/// the operator did. False if it was not an active device.
pub async fn revoke(
    store: &dyn Store,
    audit: &AuditLog,
    device_id: &str,
    user: &User,
    by_device: bool,
    now: OffsetDateTime,
) -> Result<bool, PairingError> {
    let mut tx = store.begin().await?;
    if !tx.revoke_device(device_id, now.unix_timestamp()).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let (outcome, actor, summary) = if by_device {
        (
            Outcome::Unpaired,
            Actor::Device(device_id.to_owned()),
            format!("Device {device_id} of {} unpaired itself", user.name),
        )
    } else {
        (
            Outcome::DeviceRevoked,
            Actor::Operator,
            format!("Revoked device {device_id} of {}", user.name),
        )
    };
    audit
        .commit_with(
            tx,
            &entry(user, outcome, summary, "", actor, now.unix_timestamp()),
        )
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_forgiving_to_type() {
        assert_eq!(normalise_code("ab3d-ef7h"), "AB3DEF7H");
        assert_eq!(normalise_code(" AB3D EF7H "), "AB3DEF7H");
    }
}
