//! Failed pairing attempts, counted per network source and in all, so that nobody can try
//! pairing codes at scale: after [`PER_SOURCE`] failures from one source, or [`GLOBAL`] from
//! everywhere, within [`WINDOW`], pairing answers 429 until the window has passed.
//!
//! Only failures count; a right code always pairs unless a limit is already reached. The
//! global limit means a flood of wrong codes can hold up pairing for everyone for a while;
//! that is the price of making 40-bit codes unguessable in their 10 minutes, and a new code
//! from `voxgate pair` does not help an attacker. Per replica: with several replicas the
//! limits multiply by their number, which still leaves guessing hopeless.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Failures one source may have within [`WINDOW`].
pub const PER_SOURCE: u32 = 5;
/// Failures from everywhere within [`WINDOW`].
pub const GLOBAL: u32 = 50;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Sources remembered at once (the oldest are forgotten first).
const SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            failures: 0,
        }
    }

    fn current(&mut self, now: Instant) -> &mut Self {
        if now.duration_since(self.start) >= WINDOW {
            *self = Self::new(now);
        }
        self
    }

    fn wait(&self, now: Instant) -> Duration {
        WINDOW.saturating_sub(now.duration_since(self.start))
    }
}

/// Counts failed pairing attempts.
#[derive(Debug)]
pub struct PairingLimiter {
    sources: Mutex<LruCache<IpAddr, Window>>,
    global: Mutex<Window>,
}

impl Default for PairingLimiter {
    fn default() -> Self {
        Self {
            sources: Mutex::new(LruCache::new(
                NonZeroUsize::new(SOURCES).unwrap_or(NonZeroUsize::MIN),
            )),
            global: Mutex::new(Window::new(Instant::now())),
        }
    }
}

/// The key a source is counted under: the address, or its /64 for IPv6 (one host can use
/// a whole /64).
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl PairingLimiter {
    /// How long `source` must wait before trying again, if a limit is reached.
    pub fn blocked(&self, source: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut global = self.global.lock().unwrap_or_else(|p| p.into_inner());
        let global = global.current(now);
        if global.failures >= GLOBAL {
            return Some(global.wait(now));
        }
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let window = sources.get_mut(&source_key(source))?.current(now);
        (window.failures >= PER_SOURCE).then(|| window.wait(now))
    }

    /// Counts a failed attempt from `source`.
    pub fn failed(&self, source: IpAddr) {
        let now = Instant::now();
        self.global
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current(now)
            .failures += 1;
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources
            .get_or_insert_mut(source_key(source), || Window::new(now))
            .current(now)
            .failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_blocked_after_its_failures_and_others_are_not() {
        let limiter = PairingLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..PER_SOURCE {
            assert!(limiter.blocked(a).is_none());
            limiter.failed(a);
        }
        let wait = limiter.blocked(a).expect("blocked");
        assert!(wait > Duration::from_secs(14 * 60) && wait <= WINDOW);
        assert!(limiter.blocked(b).is_none(), "another source may still try");
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_and_the_global_limit_holds_for_all() {
        let limiter = PairingLimiter::default();
        for i in 0..PER_SOURCE {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().expect("ip");
            limiter.failed(address);
        }
        let same_64: IpAddr = "2001:db8:1:2::ffff".parse().expect("ip");
        assert!(limiter.blocked(same_64).is_some());
        let global = PairingLimiter::default();
        for i in 0..GLOBAL {
            global.failed(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]));
        }
        assert!(
            global
                .blocked("198.51.100.7".parse().expect("ip"))
                .is_some()
        );
    }
}
