//! The companion app's side of voxgate: pairing a device to a user with a one-time code,
//! device tokens, and the API the app uses (pending challenges with their current code,
//! live events, deny), and the page itself (`GET /app`).
//!
//! Device tokens (256 random bits) are kept only as SHA-256 hashes. Pairing codes are short
//! (for typing), single use and valid 10 minutes; they are kept as an HMAC under a sealed
//! key, so reading the database does not let anyone try all 2^40 codes.

pub mod api;
pub mod page;

use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::store::{Store, StoreError, User, UserId};

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

/// Issues a one-time pairing code for `user` (8 characters, about 40 bits, shown as
/// `XXXX-XXXX`), valid for [`PAIRING_CODE_TTL`].
pub async fn issue_pairing_code(
    store: &dyn Store,
    key: &PairingKey,
    user: &UserId,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let bytes = random_bytes::<8>()?;
    let code: String = bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect();
    store
        .add_pairing_code(
            &key.hash(&code),
            user,
            (now + PAIRING_CODE_TTL).unix_timestamp(),
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

/// Pairs a device with `code`: `None` if the code is unknown, used or expired.
pub async fn pair(
    store: &dyn Store,
    key: &PairingKey,
    code: &str,
    now: OffsetDateTime,
) -> Result<Option<Paired>, StoreError> {
    let Some(user_id) = store
        .use_pairing_code(&key.hash(&normalise_code(code)), now.unix_timestamp())
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = store.user(&user_id).await? else {
        return Ok(None);
    };
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let device_id = crate::store::new_id("d");
    store
        .add_device(
            &device_id,
            &user.id,
            &secret_hash(&token),
            now.unix_timestamp(),
        )
        .await?;
    Ok(Some(Paired {
        token,
        device_id,
        user,
    }))
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
