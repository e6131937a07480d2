//! Operation-bound one-time codes: RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps, ±1 step of
//! skew, RFC 6238 §5.2) over a key derived from the user's key, the challenge and the
//! operation's digest:
//!
//! `K_op = HMAC-SHA256(K_user, "voxgate-op-key-v2" ‖ 0 ‖ challenge id ‖ 0 ‖ digest)`
//!
//! so a code for one operation never approves another (PSD2 "dynamic linking"), a code shown
//! for a challenge that ended never approves a later one (even of the same operation), and
//! every new challenge is approvable with its own code.

use ring::hmac;
use zeroize::Zeroizing;

/// TOTP step (RFC 6238 §4).
pub const STEP_SECONDS: u64 = 30;

/// A spoken code: 1 to 6 digits, left-padded to 6 ("81804" is "081804"). Alexa sends
/// AMAZON.NUMBER values as strings; they stay strings.
#[derive(Clone, PartialEq, Eq)]
pub struct SpokenCode(String);

impl SpokenCode {
    /// Parses what Alexa heard; anything but 1 to 6 digits is no code.
    pub fn parse(spoken: &str) -> Option<Self> {
        let spoken = spoken.trim();
        let valid = (1..=6).contains(&spoken.len()) && spoken.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Self(format!("{spoken:0>6}")))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SpokenCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpokenCode(<redacted>)")
    }
}

/// The code the companion app shows for a challenge right now.
#[derive(Clone, PartialEq, Eq)]
pub struct CurrentCode {
    /// Six digits.
    pub code: String,
    /// Seconds until the next code.
    pub seconds_left_in_step: u64,
}

impl std::fmt::Debug for CurrentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCode")
            .field("code", &"<redacted>")
            .field("seconds_left_in_step", &self.seconds_left_in_step)
            .finish()
    }
}

/// The code generator could not be made (never happens with a 32-byte key).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the one-time code generator could not be made")]
pub struct CodeError;

/// The TOTP generator of one challenge's operation.
pub fn totp_for(
    user_key: &[u8],
    challenge_id: &str,
    digest: &str,
) -> Result<totp_rs::Totp, CodeError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, user_key);
    let mut input = b"voxgate-op-key-v2\0".to_vec();
    input.extend_from_slice(challenge_id.as_bytes());
    input.push(0);
    input.extend_from_slice(digest.as_bytes());
    let k_op = Zeroizing::new(hmac::sign(&key, &input).as_ref().to_vec());
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(k_op.to_vec())
        .build()
        .map_err(|_| CodeError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_codes_stay_strings_and_are_padded() {
        assert_eq!(
            SpokenCode::parse("81804").map(|c| c.as_str().to_owned()),
            Some("081804".into())
        );
        assert_eq!(
            SpokenCode::parse("123456").map(|c| c.as_str().to_owned()),
            Some("123456".into())
        );
        assert_eq!(
            SpokenCode::parse(" 7 ").map(|c| c.as_str().to_owned()),
            Some("000007".into())
        );
        for bad in ["", "1234567", "12a456", "-12345", "12 345", "?"] {
            assert!(SpokenCode::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", SpokenCode::parse("123456")),
            "Some(SpokenCode(<redacted>))"
        );
    }

    #[test]
    fn codes_are_bound_to_the_operation_and_the_challenge() {
        let key = [7u8; 20];
        let a = totp_for(&key, "c_1", "digest-a").expect("totp");
        let t = 1_800_000_000;
        let code_a = a.generate(t).to_string();
        assert_eq!(code_a.len(), 6);
        assert!(a.check(&code_a, t).is_some());
        let other_op = totp_for(&key, "c_1", "digest-b").expect("totp");
        assert_ne!(
            other_op.generate(t).to_string(),
            code_a,
            "another operation, another code"
        );
        let other_challenge = totp_for(&key, "c_2", "digest-a").expect("totp");
        assert_ne!(
            other_challenge.generate(t).to_string(),
            code_a,
            "the same operation held again, another code"
        );
        // ±1 step of skew, no more (RFC 6238 §5.2).
        assert!(a.check(&code_a, t + 30).is_some());
        assert!(a.check(&code_a, t + 61).is_none());
        // Another user's key gives other codes.
        let other = totp_for(&[8u8; 20], "c_1", "digest-a").expect("totp");
        assert_ne!(other.generate(t).to_string(), code_a);
    }
}
