//! Signed checkpoints of the audit chain's head, kept outside the database.
//!
//! The hash chain shows any edit, reordering or gap, but not a cut-off tail: whoever deletes
//! the newest records leaves a shorter chain that is still intact. So after every append,
//! voxgate writes the new head (sequence, hash, time) as one line to an append-only file,
//! with an HMAC under a key derived from the chain key. `voxgate audit verify` (and `serve` at
//! start-up) compare the database with the newest genuine line: a database that ends before
//! it, or holds another record at its sequence, was cut or rewritten.
//!
//! The file is only as safe as the place it lives: ship it off the machine (see the README:
//! an S3 bucket with Object Lock, or the system log). Lines are written with one `write` on
//! an `O_APPEND` file, so processes sharing the file never interleave within a line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;
use serde::{Deserialize, Serialize};

use super::ChainKey;

/// The default file name, beside the local key file.
pub const DEFAULT_FILE_NAME: &str = "voxgate.audit-checkpoints";

/// Checkpoint writes that failed since start (a counter for metrics).
static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many checkpoint writes failed since this process started.
pub fn write_failures() -> u64 {
    WRITE_FAILURES.load(Ordering::Relaxed)
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the head.
    pub seq: i64,
    /// Its hash.
    pub head: String,
    /// When it was written (Unix seconds).
    pub at: i64,
    /// HMAC-SHA256 (hex) over the three, under the checkpoint key.
    pub mac: String,
}

fn checkpoint_key(chain: &ChainKey) -> hmac::Key {
    chain.derive("audit-checkpoint-v1")
}

fn mac_input(seq: i64, head: &str, at: i64) -> String {
    format!("voxgate-checkpoint-v1\n{seq}\n{head}\n{at}")
}

impl Checkpoint {
    fn signed(key: &hmac::Key, seq: i64, head: &str, at: i64) -> Self {
        Self {
            seq,
            head: head.to_owned(),
            at,
            mac: hex::encode(hmac::sign(key, mac_input(seq, head, at).as_bytes()).as_ref()),
        }
    }

    fn genuine(&self, key: &hmac::Key) -> bool {
        hex::decode(&self.mac).is_ok_and(|mac| {
            hmac::verify(
                key,
                mac_input(self.seq, &self.head, self.at).as_bytes(),
                &mac,
            )
            .is_ok()
        })
    }
}

/// Why the checkpoint file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use the audit checkpoint file {path}: {reason}; set --audit-checkpoint-file \
     (VOXGATE_AUDIT_CHECKPOINT_FILE) to a writable file"
)]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The writer: one per process.
pub struct Checkpoints {
    path: PathBuf,
    file: Mutex<(File, i64)>,
    key: hmac::Key,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Checkpoints {
    /// Opens (or creates, mode 0600) the file for appending.
    pub fn open(path: &Path, chain: &ChainKey) -> Result<Self, CheckpointError> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|e| CheckpointError {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new((file, 0)),
            key: checkpoint_key(chain),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a checkpoint of the head `seq`/`hash` (unless a newer one was written here).
    /// A failure is logged at error level and counted, never hidden.
    pub fn write(&self, seq: i64, hash: &str) {
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        let line = match serde_json::to_string(&Checkpoint::signed(&self.key, seq, hash, at)) {
            Ok(line) => line + "\n",
            Err(_) => return,
        };
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, newest) = &mut *guard;
        if seq <= *newest {
            return;
        }
        match file.write_all(line.as_bytes()) {
            Ok(()) => *newest = seq,
            Err(error) => {
                WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    %error,
                    file = %self.path.display(),
                    checkpoint_write_failures = write_failures(),
                    "could not write an audit checkpoint"
                );
            }
        }
    }

    /// Forces what was written to disk (at shutdown).
    pub fn sync(&self) {
        let guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = guard.0.sync_data() {
            tracing::error!(%error, file = %self.path.display(), "could not sync the audit checkpoints");
        }
    }
}

/// What a checkpoint file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// The newest genuine checkpoint.
    pub newest: Option<Checkpoint>,
    /// Lines signed with this log's key.
    pub genuine: usize,
    /// Lines that are not (unreadable, or signed with another key).
    pub not_genuine: usize,
}

/// Reads the file at `path` (a missing file reads as empty).
pub fn read(path: &Path, chain: &ChainKey) -> Result<Reading, CheckpointError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Reading::default()),
        Err(e) => {
            return Err(CheckpointError {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let key = checkpoint_key(chain);
    let mut reading = Reading::default();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| CheckpointError {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Checkpoint>(&line) {
            Ok(checkpoint) if checkpoint.genuine(&key) => {
                reading.genuine += 1;
                if reading
                    .newest
                    .as_ref()
                    .is_none_or(|n| checkpoint.seq > n.seq)
                {
                    reading.newest = Some(checkpoint);
                }
            }
            _ => reading.not_genuine += 1,
        }
    }
    Ok(reading)
}

/// How the database compares with a checkpoint (or a head noted elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Behind {
    /// The database ends before the vouched-for record.
    #[error(
        "the audit log ends at record {last}, but {source_name} vouches for record {seq}: the \
         newest records were removed"
    )]
    CutOff {
        /// The last record in the database.
        last: i64,
        /// The vouched-for record.
        seq: i64,
        /// What vouched for it.
        source_name: String,
    },
    /// The record at that sequence is another one.
    #[error("audit record {seq} is not the one {source_name} vouches for: the log was rewritten")]
    Rewritten {
        /// The record.
        seq: i64,
        /// What vouched for it.
        source_name: String,
    },
}

/// Checks that the database holds record `seq` with `hash`. `last` is the database's last
/// sequence number and `hash_at_seq` the hash of its record at `seq`, if it has one.
pub fn compare(
    seq: i64,
    hash: &str,
    last: i64,
    hash_at_seq: Option<&str>,
    source_name: &str,
) -> Result<(), Behind> {
    if last < seq {
        return Err(Behind::CutOff {
            last,
            seq,
            source_name: source_name.to_owned(),
        });
    }
    if hash_at_seq != Some(hash) {
        return Err(Behind::Rewritten {
            seq,
            source_name: source_name.to_owned(),
        });
    }
    Ok(())
}

/// Why the database does not match its checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The database is behind or differs.
    #[error(transparent)]
    Behind(#[from] Behind),
    /// The file cannot be read.
    #[error(transparent)]
    File(#[from] CheckpointError),
    /// The database cannot be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Compares the database with the newest genuine checkpoint in `path`; the checkpoint it
/// matched (none if the file has none).
pub async fn check_store(
    store: &dyn crate::store::Store,
    path: &Path,
    chain: &ChainKey,
) -> Result<Reading, CheckError> {
    let reading = read(path, chain)?;
    if let Some(newest) = &reading.newest {
        let last = store.audit_last().await?.map_or(0, |(seq, _)| seq);
        let at_seq = store.audit_record(newest.seq).await?;
        let written = time::OffsetDateTime::from_unix_timestamp(newest.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        compare(
            newest.seq,
            &newest.head,
            last,
            at_seq.as_ref().map(|r| r.hash.as_str()),
            &format!("the checkpoint written {written} in {}", path.display()),
        )?;
    }
    Ok(reading)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_signed_and_the_newest_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DEFAULT_FILE_NAME);
        let key = ChainKey::from_bytes(&[3u8; 32]);
        let writer = Checkpoints::open(&path, &key).expect("open");
        writer.write(1, "aa");
        writer.write(3, "cc");
        writer.write(2, "bb"); // older than what was written: skipped
        // A forged line (another key) and garbage are not believed.
        let forged = Checkpoint::signed(
            &checkpoint_key(&ChainKey::from_bytes(&[4u8; 32])),
            9,
            "ff",
            0,
        );
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        writeln!(file, "{}", serde_json::to_string(&forged).expect("json")).expect("write");
        writeln!(file, "not json").expect("write");
        let reading = read(&path, &key).expect("read");
        assert_eq!(reading.genuine, 2);
        assert_eq!(reading.not_genuine, 2);
        let newest = reading.newest.expect("newest");
        assert_eq!((newest.seq, newest.head.as_str()), (3, "cc"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_cut_off_or_rewritten_log_is_named() {
        assert_eq!(compare(5, "h5", 7, Some("h5"), "x"), Ok(()));
        assert!(matches!(
            compare(5, "h5", 4, None, "x"),
            Err(Behind::CutOff {
                last: 4,
                seq: 5,
                ..
            })
        ));
        assert!(matches!(
            compare(5, "h5", 7, Some("other"), "x"),
            Err(Behind::Rewritten { seq: 5, .. })
        ));
    }
}
