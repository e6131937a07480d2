//! A held operation as the gate sees it: its state, the versioned form it is stored in, and
//! the verdicts a spoken code can get.

use time::{Duration, OffsetDateTime};

use crate::ops::Operation;
use crate::store::{ChallengeRow, UserId};

/// The version of the stored operation envelope this build writes and reads.
pub const OPERATION_FORMAT: u32 = 1;

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its code.
    Pending,
    /// Its code was spoken; the operation is running.
    Approved,
    /// The operation ran.
    Executed,
    /// The operation failed; nothing was changed.
    Failed,
    /// Whether the operation ran cannot be known; it is never retried.
    OutcomeUnknown,
    /// Denied in the app.
    Denied,
    /// Cancelled by voice.
    Cancelled,
    /// Cancelled after too many wrong codes.
    TooManyWrongCodes,
    /// Replaced by a newer operation.
    Replaced,
    /// Its time ran out.
    Expired,
    /// Its stored operation could not be read; closed, nothing ran.
    Unreadable,
}

impl State {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::OutcomeUnknown => "outcome-unknown",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::TooManyWrongCodes => "too-many-wrong-codes",
            Self::Replaced => "replaced",
            Self::Expired => "expired",
            Self::Unreadable => "unreadable",
        }
    }

    /// Parses a stored name; an unknown one is `None` (the row is unreadable).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "executed" => Self::Executed,
            "failed" => Self::Failed,
            "outcome-unknown" => Self::OutcomeUnknown,
            "denied" => Self::Denied,
            "cancelled" => Self::Cancelled,
            "too-many-wrong-codes" => Self::TooManyWrongCodes,
            "replaced" => Self::Replaced,
            "expired" => Self::Expired,
            "unreadable" => Self::Unreadable,
            _ => return None,
        })
    }

    /// Approved, and run or being run: its code has been used.
    pub fn was_approved(self) -> bool {
        matches!(
            self,
            Self::Approved | Self::Executed | Self::Failed | Self::OutcomeUnknown
        )
    }
}

/// How an operation is stored: a versioned, tagged envelope, so that a row written by
/// another version is recognised as such instead of being misread.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    format: u32,
    kind: String,
    operation: serde_json::Value,
}

/// The stored form of `operation`.
pub fn store_operation(operation: &Operation) -> String {
    serde_json::to_string(&Envelope {
        format: OPERATION_FORMAT,
        kind: operation.kind().to_owned(),
        operation: operation.to_stored(),
    })
    .unwrap_or_default()
}

/// Whether `stored` was written by a newer voxgate: a later envelope format, or a kind of
/// operation this build does not know. Such a row is left to the version that wrote it
/// (during a rolling upgrade) until it is due, rather than closed as unreadable.
pub fn from_newer_version(stored: &str) -> bool {
    serde_json::from_str::<Envelope>(stored).is_ok_and(|envelope| {
        envelope.format > OPERATION_FORMAT
            || (envelope.format == OPERATION_FORMAT && !Operation::knows_kind(&envelope.kind))
    })
}

fn read_operation(stored: &str) -> Option<Operation> {
    let envelope: Envelope = serde_json::from_str(stored).ok()?;
    if envelope.format != OPERATION_FORMAT {
        return None;
    }
    Operation::from_stored(&envelope.kind, envelope.operation)
}

/// A held operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `c_…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: UserId,
    /// The operation.
    pub operation: Operation,
    /// Canonical summary.
    pub summary: String,
    /// Digest.
    pub digest: String,
    /// State.
    pub state: State,
    /// When it was held.
    pub created_at: OffsetDateTime,
    /// When it stops waiting.
    pub expires_at: OffsetDateTime,
    /// Wrong codes so far.
    pub wrong_codes: i64,
}

fn timestamp(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Challenge {
    /// Reads a stored row; `None` if it cannot be trusted: an envelope of another format or
    /// kind, an operation whose digest is not the one its codes were made for, or an
    /// unknown state.
    pub fn read(row: &ChallengeRow) -> Option<Self> {
        let operation = read_operation(&row.operation)?;
        // What runs must be what the code was made for.
        if operation.digest() != row.digest {
            return None;
        }
        Some(Self {
            id: row.id.clone(),
            tenant_id: row.tenant_id.clone(),
            user_id: UserId(row.user_id.clone()),
            // Said again from the operation itself: a row whose stored words were changed
            // still shows what would run.
            summary: operation.summary(),
            digest: row.digest.clone(),
            state: State::parse(&row.state)?,
            created_at: timestamp(row.created_at),
            expires_at: timestamp(row.expires_at),
            wrong_codes: row.wrong_codes,
            operation,
        })
    }
}

/// What became of a spoken code. Every way a code can be refused has its own verdict, so
/// the person hears what really happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right code: the challenge is approved; the caller runs the operation now.
    Approved(Challenge),
    /// Wrong code; this many tries are left.
    WrongCode {
        /// Tries left on this challenge.
        tries_left: i64,
        /// The challenge.
        challenge: Challenge,
        /// How long the person must now wait before the next code is checked, if this wrong
        /// code started a lockout.
        locked_for: Option<Duration>,
        /// How long the next wrong code would lock them out, if it would: the warning comes
        /// before the lockout.
        next_lockout: Option<Duration>,
    },
    /// Wrong code, and the last allowed: the challenge is cancelled.
    TooManyWrongCodes(Challenge),
    /// The user is locked out for this long; the code was not checked.
    LockedOut(Duration),
    /// The right code, again: it already approved the operation, which ran (or is running).
    AlreadyUsed(Challenge),
    /// The operation was already approved (with its code); this code changes nothing.
    AlreadyApproved(Challenge),
    /// The challenge was denied in the app.
    Denied(Challenge),
    /// The challenge was cancelled by voice.
    Cancelled(Challenge),
    /// The challenge was replaced by a newer operation.
    Replaced(Challenge),
    /// The challenge's time ran out.
    Expired(Challenge),
    /// The challenge was cancelled earlier, after too many wrong codes.
    EndedByWrongCodes(Challenge),
    /// The stored challenge could not be read; it was closed and nothing ran.
    Unreadable,
    /// Nothing is waiting for a code.
    NothingPending,
    /// Another code for the same challenge is being checked right now; try again.
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::instances::{Action, InstanceOperation};

    fn row(operation: String, digest: String, state: &str) -> ChallengeRow {
        ChallengeRow {
            id: "c_1".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            account_id: "a".into(),
            operation,
            summary: "Stop instance web-1".into(),
            digest,
            state: state.into(),
            created_at: 0,
            expires_at: 300,
            wrong_codes: 0,
            used_step: None,
            closed_at: None,
        }
    }

    #[test]
    fn stored_operations_carry_their_format_and_are_checked_on_reading() {
        let op = Operation::Instance(InstanceOperation {
            action: Action::Stop,
            account_id: "a".into(),
            account_name: "prod".into(),
            region: "eu-west-1".into(),
            instance_id: "i-1".into(),
            instance_name: "web-1".into(),
        });
        let stored = store_operation(&op);
        assert!(
            stored.starts_with(r#"{"format":1,"kind":"ec2-instance","#),
            "{stored}"
        );
        let read = Challenge::read(&row(stored.clone(), op.digest(), "pending")).expect("read");
        assert_eq!(read.operation, op);

        // Another digest: the code was made for something else.
        assert!(Challenge::read(&row(stored.clone(), "00".into(), "pending")).is_none());
        // A future format, an unknown kind, a bare operation, junk, an unknown state.
        let future = stored.replace(r#""format":1"#, r#""format":2"#);
        let other_kind = stored.replace("ec2-instance", "rds-instance");
        let bare = serde_json::to_string(&op.to_stored()).expect("json");
        for bad in [future, other_kind, bare, "junk".into()] {
            assert!(
                Challenge::read(&row(bad.clone(), op.digest(), "pending")).is_none(),
                "{bad}"
            );
        }
        assert!(Challenge::read(&row(stored, op.digest(), "paused")).is_none());
    }
}
