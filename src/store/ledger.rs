//! The replay ledger: Alexa request ids seen within their timestamp window, so a replayed
//! request is refused. Two forms behind one trait:
//!
//! - [`StoreReplayLedger`], for a store several replicas share (PostgreSQL): every request
//!   waits for its id to be on record in the database, with group commit (ids that arrive
//!   while one batch is written go in the next, one statement per batch).
//! - [`LocalReplayLedger`], for a store one process serves (SQLite): the ids are checked in
//!   memory, and written to the database behind (every 100 ms, as one packed row of 16-byte
//!   digests) so that a restart reloads them. The trade-off: ids recorded in the last 100 ms before a crash (not a graceful
//!   stop, which writes them first) are forgotten, so a replay of one of those within its
//!   150 s window after the restart would be accepted.
//!
//! Both forget ids by the requests' own (Alexa's) timestamps, never by a replica's clock.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::alexa::verify::ReplayLedger;

/// The ledger `store` calls for: shared by replicas, or kept by this one process.
pub async fn replay_ledger(
    store: Arc<dyn Store>,
    now: OffsetDateTime,
) -> Result<Arc<dyn ReplayLedger>, StoreError> {
    Ok(if store.shared() {
        Arc::new(StoreReplayLedger::new(store))
    } else {
        Arc::new(LocalReplayLedger::load(store, now).await?)
    })
}

/// Ids written in one statement at most.
const BATCH: usize = 512;

/// The shared ledger (see the module documentation).
#[derive(Debug, Clone)]
pub struct StoreReplayLedger {
    sender: tokio::sync::mpsc::Sender<Sighting>,
}

#[derive(Debug)]
struct Sighting {
    request_id: String,
    expires_at: i64,
    forget_before: i64,
    reply: tokio::sync::oneshot::Sender<Result<bool, String>>,
}

impl StoreReplayLedger {
    /// A ledger writing to `store` (its writer runs on the current runtime).
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(16 * BATCH);
        tokio::spawn(write_sightings(store, receiver));
        Self { sender }
    }
}

async fn write_sightings(
    store: Arc<dyn Store>,
    mut receiver: tokio::sync::mpsc::Receiver<Sighting>,
) {
    let mut batch: Vec<Sighting> = Vec::with_capacity(BATCH);
    let mut last_forget = std::time::Instant::now();
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        // Within one batch an id is new only once.
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(batch.len());
        let mut repeated = HashSet::new();
        for (i, s) in batch.iter().enumerate() {
            if seen.insert(s.request_id.as_str()) {
                rows.push((s.request_id.clone(), s.expires_at));
            } else {
                repeated.insert(i);
            }
        }
        let result = store.record_request_ids(&rows).await;
        let forget_before = batch.iter().map(|s| s.forget_before).max().unwrap_or(0);
        let mut answers = match &result {
            Ok(answers) => answers.iter().copied().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error.to_string()); rows.len()],
        }
        .into_iter();
        for (i, sighting) in batch.drain(..).enumerate() {
            let answer = if repeated.contains(&i) {
                Ok(false)
            } else {
                answers
                    .next()
                    .unwrap_or_else(|| Err("no answer from the ledger".into()))
            };
            let _ = sighting.reply.send(answer);
        }
        if last_forget.elapsed() >= Duration::from_secs(1) {
            last_forget = std::time::Instant::now();
            if let Err(error) = store.forget_request_ids(forget_before).await {
                tracing::warn!(%error, "could not forget old request ids");
            }
        }
    }
}

#[async_trait]
impl ReplayLedger for StoreReplayLedger {
    async fn first_sighting(
        &self,
        request_id: &str,
        forget_after: OffsetDateTime,
        forget_before: OffsetDateTime,
    ) -> Result<bool, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(Sighting {
                request_id: request_id.to_owned(),
                expires_at: forget_after.unix_timestamp(),
                forget_before: forget_before.unix_timestamp(),
                reply,
            })
            .await
            .map_err(|_| "the replay ledger stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the replay ledger stopped".to_owned())?
    }
}

/// Ids kept in memory at most (about 40 bytes each); more within their windows (over
/// 6,600 requests a second, sustained) and the guard fails closed.
const LOCAL_CAPACITY: usize = 1_000_000;
/// How often the ids seen are written behind.
const WRITE_BEHIND: Duration = Duration::from_millis(100);
/// Bytes of one id in a packed row: its digest and when it may be forgotten.
const PACKED: usize = 24;
/// Ids in one packed row at most (1.5 MB).
const PACKED_ROW: usize = 65_536;

/// One id of a packed row: its digest and when it may be forgotten.
fn unpack(record: &[u8]) -> (u128, i64) {
    let mut key = [0u8; 16];
    key.copy_from_slice(&record[..16]);
    let mut expires_at = [0u8; 8];
    expires_at.copy_from_slice(&record[16..PACKED]);
    (u128::from_be_bytes(key), i64::from_be_bytes(expires_at))
}

/// The ledger of a store one process serves (see the module documentation).
#[derive(Debug, Clone)]
pub struct LocalReplayLedger {
    inner: Arc<Local>,
}

#[derive(Debug)]
struct Local {
    seen: Mutex<Seen>,
    store: Arc<dyn Store>,
    /// Serialises write-behind flushes (the timer's and the final one).
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Seen {
    /// A 128-bit digest of each id, and when it may be forgotten.
    ids: HashMap<u128, i64>,
    /// The same, ordered by when they may be forgotten (skill events are kept an hour,
    /// other requests 150 s: an insertion-ordered queue would stall behind an event).
    order: BTreeSet<(i64, u128)>,
    /// Seen but not yet written to the store: digests and when they may be forgotten.
    pending: Vec<(u128, i64)>,
    /// The latest "forget before" a request brought.
    forget_before: i64,
}

/// The first 128 bits of the id's SHA-256: fixed-size keys, no collision in practice.
fn digest(request_id: &str) -> u128 {
    let hash = ring::digest::digest(&ring::digest::SHA256, request_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    u128::from_be_bytes(bytes)
}

impl Seen {
    fn forget(&mut self, before: i64) {
        while let Some(&(expires_at, key)) = self.order.first() {
            if expires_at >= before {
                break;
            }
            self.order.pop_first();
            if self.ids.get(&key) == Some(&expires_at) {
                self.ids.remove(&key);
            }
        }
    }

    fn remember(&mut self, key: u128, expires_at: i64) {
        if let Some(earlier) = self.ids.insert(key, expires_at) {
            self.order.remove(&(earlier, key));
        }
        self.order.insert((expires_at, key));
    }
}

impl LocalReplayLedger {
    /// The guard, with the ids `store` holds that may still come back at `now`, and its
    /// write-behind running on the current runtime.
    pub async fn load(store: Arc<dyn Store>, now: OffsetDateTime) -> Result<Self, StoreError> {
        let mut seen = Seen::default();
        let now = now.unix_timestamp();
        // Ids written one row each by earlier versions, then the packed rows.
        for (id, expires_at) in store.live_request_ids(now).await? {
            seen.remember(digest(&id), expires_at);
        }
        for packed in store.live_request_digests(now).await? {
            let records = packed.chunks_exact(PACKED);
            if !records.remainder().is_empty() {
                // Fail closed: a guard that cannot read what it saw cannot vouch.
                return Err(StoreError::NotFound(
                    "a readable replay ledger: a row of seen_request_digests is damaged \
                     (its length is not a whole number of records)"
                        .into(),
                ));
            }
            for record in records {
                let (key, expires_at) = unpack(record);
                if expires_at >= now {
                    seen.remember(key, expires_at);
                }
            }
        }
        let inner = Arc::new(Local {
            seen: Mutex::new(seen),
            store,
            flushing: tokio::sync::Mutex::new(()),
        });
        let writer = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WRITE_BEHIND);
            let mut last_forget = std::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(inner) = writer.upgrade() else { break };
                inner.flush().await;
                if last_forget.elapsed() >= Duration::from_secs(1) {
                    last_forget = std::time::Instant::now();
                    let before = inner.lock().forget_before;
                    if let Err(error) = inner.store.forget_request_ids(before).await {
                        tracing::warn!(%error, "could not forget old request ids");
                    }
                }
            }
        });
        Ok(Self { inner })
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Local {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the ids seen since the last write, packed, one row per [`PACKED_ROW`] ids.
    /// What the store does not take stays for the next write (ids already past their
    /// window are dropped then).
    async fn flush(&self) {
        let _turn = self.flushing.lock().await;
        let pending = std::mem::take(&mut self.lock().pending);
        for (done, chunk) in pending.chunks(PACKED_ROW).enumerate() {
            let mut packed = Vec::with_capacity(chunk.len() * PACKED);
            for (key, expires_at) in chunk {
                packed.extend_from_slice(&key.to_be_bytes());
                packed.extend_from_slice(&expires_at.to_be_bytes());
            }
            let forget_after = chunk.iter().map(|(_, e)| *e).max().unwrap_or(0);
            if let Err(error) = self
                .store
                .record_request_digests(forget_after, &packed)
                .await
            {
                tracing::warn!(
                    %error,
                    "could not write request ids behind; trying again shortly"
                );
                let mut seen = self.lock();
                let before = seen.forget_before;
                let mut unwritten: Vec<(u128, i64)> = pending[done * PACKED_ROW..]
                    .iter()
                    .filter(|(_, expires_at)| *expires_at >= before)
                    .copied()
                    .collect();
                unwritten.append(&mut seen.pending);
                seen.pending = unwritten;
                return;
            }
        }
    }
}

#[async_trait]
impl ReplayLedger for LocalReplayLedger {
    async fn first_sighting(
        &self,
        request_id: &str,
        forget_after: OffsetDateTime,
        forget_before: OffsetDateTime,
    ) -> Result<bool, String> {
        let key = digest(request_id);
        let mut seen = self.inner.lock();
        let before = forget_before.unix_timestamp();
        seen.forget_before = seen.forget_before.max(before);
        seen.forget(before);
        if seen.ids.contains_key(&key) {
            return Ok(false);
        }
        if seen.ids.len() >= LOCAL_CAPACITY {
            // Fail closed: a guard that cannot remember cannot vouch.
            return Err("the replay guard is full".into());
        }
        let expires_at = forget_after.unix_timestamp();
        seen.remember(key, expires_at);
        seen.pending.push((key, expires_at));
        Ok(true)
    }

    async fn flush(&self) {
        self.inner.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_window_does_not_hold_up_forgetting_the_short_ones() {
        let mut seen = Seen::default();
        // A skill event (an hour) seen first, then ordinary requests (150 s).
        seen.remember(1, 1_000 + 3_600);
        for key in 2..100 {
            seen.remember(key, 1_000 + 150);
        }
        seen.forget(1_000 + 151);
        assert_eq!(seen.ids.len(), 1, "only the event is still remembered");
        assert_eq!(seen.order.len(), 1);
    }

    #[tokio::test]
    async fn ids_the_store_refused_are_written_once_it_takes_them() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("voxgate.db").display());
        let store = crate::store::connect(&url).await.expect("store");
        let now = OffsetDateTime::now_utc();
        let ledger = LocalReplayLedger::load(Arc::clone(&store), now)
            .await
            .expect("ledger");
        let pool = sqlx::AnyPool::connect(&url).await.expect("pool");
        // The store cannot take the ids for a while.
        sqlx::query("ALTER TABLE seen_request_digests RENAME TO seen_request_digests_away")
            .execute(&pool)
            .await
            .expect("rename");
        let window = time::Duration::seconds(150);
        assert_eq!(
            ledger
                .first_sighting("r-1", now + window, now - window)
                .await,
            Ok(true)
        );
        ledger.flush().await;
        sqlx::query("ALTER TABLE seen_request_digests_away RENAME TO seen_request_digests")
            .execute(&pool)
            .await
            .expect("rename back");
        ledger.flush().await;
        // A guard loaded from the store now (as after a restart) knows the id.
        let reloaded = LocalReplayLedger::load(Arc::clone(&store), now)
            .await
            .expect("ledger");
        assert_eq!(
            reloaded
                .first_sighting("r-1", now + window, now - window)
                .await,
            Ok(false),
            "the id written late is still known after a restart"
        );
        assert_eq!(
            reloaded
                .first_sighting("r-2", now + window, now - window)
                .await,
            Ok(true)
        );
    }

    #[tokio::test]
    async fn ids_written_one_row_each_by_an_earlier_version_are_still_known() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("voxgate.db").display());
        let store = crate::store::connect(&url).await.expect("store");
        let now = OffsetDateTime::now_utc();
        let window = time::Duration::seconds(150);
        store
            .record_request_ids(&[("r-old".to_owned(), (now + window).unix_timestamp())])
            .await
            .expect("recorded");
        let ledger = LocalReplayLedger::load(Arc::clone(&store), now)
            .await
            .expect("ledger");
        assert_eq!(
            ledger
                .first_sighting("r-old", now + window, now - window)
                .await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn a_damaged_packed_row_stops_the_guard_from_loading() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("voxgate.db").display());
        let store = crate::store::connect(&url).await.expect("store");
        let now = OffsetDateTime::now_utc();
        store
            .record_request_digests(now.unix_timestamp() + 150, &[0u8; 30])
            .await
            .expect("recorded");
        let error = LocalReplayLedger::load(Arc::clone(&store), now)
            .await
            .expect_err("a damaged row is not skipped");
        assert!(
            error.to_string().contains("seen_request_digests"),
            "{error}"
        );
    }
}
