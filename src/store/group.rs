//! Group commit for SQLite: the write transactions of one process share one connection,
//! one after the other, each under a savepoint of one SQLite transaction, and the
//! transactions that finished while another was running are committed together, with one
//! wait for the disk.
//!
//! SQLite has one writer, and every commit waits for the disk (about a millisecond or
//! more). Committing each transaction on its own puts that wait, and the writer's queue,
//! on every hold and confirm; committing the ones that queued meanwhile together keeps
//! full durability (nothing reports success before its commit is on disk) at a fraction of
//! the waits.
//!
//! How a batch forms: a member takes the writer (a fair, first-come lock), runs its
//! statements under `SAVEPOINT member`, releases the savepoint into the open transaction
//! and gives the writer back; then it queues for the writer once more, behind everyone
//! who was already waiting. Whoever of the batch gets the writer first with nobody's
//! statements under way commits the batch and tells every member. A member that finds
//! nobody waiting for the writer commits at once (a batch of one: no queue to go through
//! when the store is not busy). A member that is
//! dropped uncommitted is rolled back to its savepoint alone. A failed commit fails every
//! member of its batch: none of their writes happened, and each is told so.
//!
//! Beginning, committing and rolling back run in tasks of their own, so a request that
//! goes away while it waits (a timeout, a client that hangs up) cannot leave a batch
//! uncommitted, the database locked, or the members of its batch told the wrong outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::StoreError;

/// How long a write waits for the writer before it gives up (as SQLite's busy timeout).
const WAIT: Duration = Duration::from_secs(10);

/// The process's SQLite writer.
#[derive(Debug, Clone)]
pub(super) struct GroupWriter {
    url: Arc<str>,
    state: Arc<Mutex<State>>,
    /// How many wait for the writer (to begin, or to commit a batch).
    queued: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct State {
    /// The writer's connection (opened on first use, closed after a failure whose effect
    /// on the connection is unknown).
    conn: Option<AnyConnection>,
    /// The open transaction and the members released into it.
    batch: Option<Batch>,
    /// The number the next batch gets.
    next: u64,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    /// Those waiting to hear how the commit went.
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

/// One write transaction: the writer, held from `begin` until it commits or is dropped.
#[derive(Debug)]
pub(super) struct Member {
    guard: Option<OwnedMutexGuard<State>>,
    state: Arc<Mutex<State>>,
    queued: Arc<AtomicUsize>,
}

impl GroupWriter {
    pub(super) fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            state: Arc::new(Mutex::new(State::default())),
            queued: Arc::default(),
        }
    }

    /// Starts a write transaction (waits for the writer at most [`WAIT`]).
    pub(super) async fn begin(&self) -> Result<Member, StoreError> {
        let locked = {
            let _waiting = Waiting::new(&self.queued);
            tokio::time::timeout(WAIT, self.state.clone().lock_owned()).await
        };
        let guard = locked.map_err(|_| StoreError::Busy)?;
        // The statements run in a task of their own: a caller that goes away meanwhile
        // cannot leave a transaction begun and unknown to the batch.
        let (told, started) = oneshot::channel();
        let url = self.url.clone();
        tokio::spawn(async move {
            let mut guard = guard;
            let outcome = start(&mut guard, &url).await;
            match outcome {
                Ok(()) => {
                    if let Err(Ok(mut guard)) = told.send(Ok(guard)) {
                        // The caller went away: its (empty) transaction is undone.
                        rolled_back(&mut guard).await;
                    }
                }
                Err(error) => {
                    let _ = told.send(Err(error));
                }
            }
        });
        let guard = started
            .await
            .map_err(|_| StoreError::Commit("the writer stopped".into()))??;
        Ok(Member {
            guard: Some(guard),
            state: self.state.clone(),
            queued: self.queued.clone(),
        })
    }
}

/// Opens the connection if need be, and a transaction for a new member: within the open
/// batch, or a batch of its own.
async fn start(guard: &mut State, url: &str) -> Result<(), StoreError> {
    if guard.conn.is_none() {
        guard.conn = Some(open(url).await?);
    }
    if guard.batch.is_none() {
        // Take the write lock at once (as every transaction here did before): a
        // transaction that reads first could not upgrade its lock later. One round trip
        // to SQLite's thread for both statements.
        if let Err(error) = run(guard, "BEGIN IMMEDIATE; SAVEPOINT member").await {
            // Nobody was released into it: closing the connection rolls back whatever
            // of the two ran.
            guard.conn = None;
            return Err(error);
        }
        let id = guard.next;
        guard.next += 1;
        guard.batch = Some(Batch {
            id,
            waiting: Vec::new(),
        });
    } else if let Err(error) = run(guard, "SAVEPOINT member").await {
        end_if_empty(guard).await;
        return Err(error);
    }
    Ok(())
}

/// One who waits for the writer, counted for as long as this lives (also when the wait is
/// given up).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(queued: &Arc<AtomicUsize>) -> Self {
        queued.fetch_add(1, Ordering::SeqCst);
        Self(queued.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Member {
    /// The connection to run this transaction's statements on.
    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        self.guard
            .as_mut()
            .and_then(|guard| guard.conn.as_mut())
            .expect("a member holds the writer and its connection")
    }

    /// Commits this transaction with its batch: returns once the batch is on disk (or
    /// failed). The work runs in a task of its own, so a caller that goes away meanwhile
    /// changes nothing: its transaction is committed with the batch, and everyone in the
    /// batch is told how the commit went.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        let guard = self.guard.take().expect("a member commits once");
        let (told, outcome) = oneshot::channel();
        let (state, queued) = (self.state.clone(), self.queued.clone());
        tokio::spawn(async move {
            let mut guard = guard;
            if let Err(error) = run(&mut guard, "RELEASE member").await {
                rolled_back(&mut guard).await;
                let _ = told.send(Err(error.to_string()));
                return;
            }
            let batch = guard.batch.as_mut().expect("a member runs in a batch");
            batch.waiting.push(told);
            let id = batch.id;
            if queued.load(Ordering::SeqCst) == 0 {
                // Nobody waits to add to the batch (or to commit it): commit it now,
                // without a queue to wait in.
                commit_batch(&mut guard).await;
                return;
            }
            // Queue behind those already waiting for the writer; the first of this batch
            // to get it back commits everyone's.
            let waiting = Waiting::new(&queued);
            drop(guard);
            let mut guard = state.lock_owned().await;
            drop(waiting);
            if guard.batch.as_ref().is_some_and(|batch| batch.id == id) {
                commit_batch(&mut guard).await;
            }
        });
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(StoreError::Commit(reason)),
            Err(_) => Err(StoreError::Commit("the writer stopped".into())),
        }
    }

    /// Ends this transaction without writing; returns once the transactions released into
    /// its batch before it are committed (or failed), so that what is read next on another
    /// connection is at least as new as what this one saw. In a task of its own, as
    /// [`Member::commit`]: a caller that goes away cannot cut the batch's commit short.
    pub(super) async fn rollback(mut self) -> Result<(), StoreError> {
        let guard = self.guard.take().expect("a member ends once");
        let (done, finished) = oneshot::channel();
        tokio::spawn(async move {
            let mut guard = guard;
            rolled_back(&mut guard).await;
            commit_batch(&mut guard).await;
            let _ = done.send(());
        });
        let _ = finished.await;
        Ok(())
    }
}

impl Drop for Member {
    /// Rolls back this transaction alone (its batch goes on).
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { rolled_back(&mut guard).await });
            }
            // No runtime to roll back on: closing the connection rolls back the batch.
            Err(_) => fail_batch(&mut guard, "the writer stopped"),
        }
    }
}

/// Opens the writer's connection.
async fn open(url: &str) -> Result<AnyConnection, StoreError> {
    let mut conn = AnyConnection::connect(url).await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(conn)
}

/// Runs `sql` on the writer's connection.
async fn run(guard: &mut State, sql: &'static str) -> Result<(), StoreError> {
    let conn = guard.conn.as_mut().ok_or(StoreError::Busy)?;
    conn.execute(sql).await?;
    Ok(())
}

/// Undoes the running member's statements; if that fails, the whole batch is given up.
async fn rolled_back(guard: &mut State) {
    let undone = match run(guard, "ROLLBACK TO member").await {
        Ok(()) => run(guard, "RELEASE member").await,
        Err(error) => Err(error),
    };
    match undone {
        Ok(()) => end_if_empty(guard).await,
        Err(error) => fail_batch(guard, &error.to_string()),
    }
}

/// Ends an open transaction nobody was released into (it holds SQLite's write lock).
async fn end_if_empty(guard: &mut State) {
    if guard
        .batch
        .as_ref()
        .is_some_and(|batch| batch.waiting.is_empty())
    {
        guard.batch = None;
        if run(guard, "ROLLBACK").await.is_err() {
            guard.conn = None;
        }
    }
}

/// Commits the open batch and tells its members.
async fn commit_batch(guard: &mut State) {
    let Some(batch) = guard.batch.take() else {
        return;
    };
    let outcome = match run(guard, "COMMIT").await {
        Ok(()) => {
            metrics::counter!(crate::metrics::SQLITE_COMMITS).increment(1);
            metrics::counter!(crate::metrics::SQLITE_WRITES).increment(batch.waiting.len() as u64);
            Ok(())
        }
        Err(error) => {
            // Whatever SQLite left open is rolled back; a connection in an unknown
            // state is closed (which rolls it back) and opened again on next use.
            if run(guard, "ROLLBACK").await.is_err() {
                guard.conn = None;
            }
            Err(error.to_string())
        }
    };
    for told in batch.waiting {
        let _ = told.send(outcome.clone());
    }
}

/// Gives up the open batch: the connection is closed, which rolls it back, and every
/// member is told.
fn fail_batch(guard: &mut State, reason: &str) {
    guard.conn = None;
    if let Some(batch) = guard.batch.take() {
        for told in batch.waiting {
            let _ = told.send(Err(reason.to_owned()));
        }
    }
}
