//! Failed pairing attempts, counted per network source and in all, so that nobody can try
//! pairing codes at scale: after [`PER_SOURCE`] failures from one source, or [`GLOBAL`] from
//! everywhere, within [`WINDOW`], pairing answers 429 until the window has passed.
//!
//! Every attempt is counted when it starts, under one lock, before the store is touched, so
//! a burst of parallel attempts cannot slip past the limit; an attempt that pairs gives its
//! count back, so only failures (wrong codes, and errors) stay counted. At most
//! [`CONCURRENT`] attempts run at once; more are told to try again in a second. The
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
/// Pairing attempts running at once.
pub const CONCURRENT: usize = 4;
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
    running: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Why an attempt may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A limit is reached: wait this long.
    TooMany(Duration),
    /// [`CONCURRENT`] attempts are running: try again in a moment.
    Busy,
}

/// One counted attempt; [`Attempt::paired`] gives its count back.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a PairingLimiter,
    key: IpAddr,
    _running: tokio::sync::OwnedSemaphorePermit,
}

impl Attempt<'_> {
    /// The code was right: this attempt does not count as a failure.
    pub fn paired(self) {
        let now = Instant::now();
        let global = &mut *self
            .limiter
            .global
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let global = global.current(now);
        global.failures = global.failures.saturating_sub(1);
        let mut sources = self
            .limiter
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(window) = sources.get_mut(&self.key) {
            let window = window.current(now);
            window.failures = window.failures.saturating_sub(1);
        }
    }
}

impl Default for PairingLimiter {
    fn default() -> Self {
        Self {
            sources: Mutex::new(LruCache::new(
                NonZeroUsize::new(SOURCES).unwrap_or(NonZeroUsize::MIN),
            )),
            global: Mutex::new(Window::new(Instant::now())),
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT)),
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
    /// Starts an attempt from `source`, counted as a failure until [`Attempt::paired`];
    /// refused when a limit is reached or too many attempts are running.
    pub fn attempt(&self, source: IpAddr) -> Result<Attempt<'_>, Refusal> {
        let running = std::sync::Arc::clone(&self.running)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        let now = Instant::now();
        let key = source_key(source);
        let mut global = self.global.lock().unwrap_or_else(|p| p.into_inner());
        let global = global.current(now);
        if global.failures >= GLOBAL {
            return Err(Refusal::TooMany(global.wait(now)));
        }
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let window = sources
            .get_or_insert_mut(key, || Window::new(now))
            .current(now);
        if window.failures >= PER_SOURCE {
            return Err(Refusal::TooMany(window.wait(now)));
        }
        window.failures += 1;
        global.failures += 1;
        Ok(Attempt {
            limiter: self,
            key,
            _running: running,
        })
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
            drop(limiter.attempt(a).expect("may try"));
        }
        let Err(Refusal::TooMany(wait)) = limiter.attempt(a) else {
            panic!("a sixth failure must wait");
        };
        assert!(wait > Duration::from_secs(14 * 60) && wait <= WINDOW);
        assert!(limiter.attempt(b).is_ok(), "another source may still try");
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_finish_and_a_pairing_gives_its_count_back() {
        let limiter = PairingLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        // Attempts still running count: no burst slips past the limit or the cap.
        let running: Vec<_> = (0..CONCURRENT)
            .map(|_| limiter.attempt(a).expect("may try"))
            .collect();
        assert_eq!(limiter.attempt(a).err(), Some(Refusal::Busy));
        for attempt in running {
            attempt.paired();
        }
        for _ in 0..PER_SOURCE {
            drop(limiter.attempt(a).expect("pairings did not count"));
        }
        assert!(matches!(limiter.attempt(a), Err(Refusal::TooMany(_))));
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_and_the_global_limit_holds_for_all() {
        let limiter = PairingLimiter::default();
        for i in 0..PER_SOURCE {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().expect("ip");
            drop(limiter.attempt(address).expect("may try"));
        }
        let same_64: IpAddr = "2001:db8:1:2::ffff".parse().expect("ip");
        assert!(limiter.attempt(same_64).is_err());
        let global = PairingLimiter::default();
        for i in 0..GLOBAL {
            drop(
                global
                    .attempt(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]))
                    .expect("may try"),
            );
        }
        assert!(global.attempt("198.51.100.7".parse().expect("ip")).is_err());
    }
}
