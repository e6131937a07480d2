//! Time as a dependency. Everything that compares against "now" (request timestamps,
//! certificate validity, later challenge expiry and TOTP steps) asks a [`Clock`] passed in,
//! so tests can move time without sleeping. Owns no other state.

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Time since a fixed origin, never going back whatever the wall clock does (an NTP
    /// step): for deadlines that must hold however [`Clock::now`] is set.
    fn monotonic(&self) -> std::time::Duration {
        process_monotonic()
    }
}

/// The machine's monotonic clock, from the first time this process asked.
pub fn process_monotonic() -> std::time::Duration {
    static ORIGIN: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    ORIGIN.elapsed()
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; for tests and demos.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// The wall clock and the monotonic one.
    now: Arc<Mutex<(OffsetDateTime, std::time::Duration)>>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new((start, std::time::Duration::ZERO))),
        }
    }

    /// A clock standing still at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    /// Moves the clock forward: time passes. With a negative duration the wall clock is
    /// set back (as NTP would), and the monotonic clock stays where it is.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        now.0 += by;
        now.1 += std::time::Duration::try_from(by).unwrap_or_default();
    }

    /// Sets the wall clock to `to` (time passes if it is later).
    pub fn set(&self, to: OffsetDateTime) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let passed = std::time::Duration::try_from(to - now.0).unwrap_or_default();
        now.1 += passed;
        now.0 = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
    }

    fn monotonic(&self) -> std::time::Duration {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(clock.now(), OffsetDateTime::UNIX_EPOCH);
        clock.advance(Duration::seconds(90));
        assert_eq!(
            clock.now(),
            OffsetDateTime::UNIX_EPOCH + Duration::seconds(90)
        );
    }

    #[test]
    fn setting_the_wall_clock_back_does_not_move_the_monotonic_one() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        clock.advance(Duration::seconds(90));
        clock.advance(Duration::seconds(-60));
        assert_eq!(clock.monotonic(), std::time::Duration::from_secs(90));
        clock.set(OffsetDateTime::UNIX_EPOCH + Duration::seconds(100));
        assert_eq!(clock.monotonic(), std::time::Duration::from_secs(160));
        clock.set(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(clock.monotonic(), std::time::Duration::from_secs(160));
    }
}
