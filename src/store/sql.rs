//! The [`Store`] on SQL through sqlx's `Any` driver: one set of queries for SQLite and
//! PostgreSQL (both understand `$1` placeholders, `lower()`, `RETURNING`), the backend
//! chosen by the URL, and migrations per backend.

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection as _, Executor as _, Row as _};

use super::group::{GroupWriter, Member};
use super::model::Sealed;
use super::model::*;
use super::{Store, StoreError, StoreTx};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL channel that carries companion events between replicas.
const EVENT_CHANNEL: &str = "voxgate_events";

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// On PostgreSQL one connection for the replay ledger, committing without waiting for
    /// the disk (see [`SqlStore::connect`]); on SQLite the pool itself.
    ledger: AnyPool,
    /// SQLite's writer, committing the transactions that queue together (see
    /// [`super::group`]); none when connected only to look.
    writer: Option<GroupWriter>,
    backend: Backend,
    /// The SQLite file (SQLite only).
    sqlite_file: Option<std::path::PathBuf>,
    /// Events heard on PostgreSQL's LISTEN channel (PostgreSQL only).
    events: Option<tokio::sync::broadcast::Sender<String>>,
}

/// `url` without a password, for messages.
pub fn redact(url: &str) -> String {
    const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword", "sslkey"];
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("****"));
            }
            let kept: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    if SECRET_PARAMETERS.contains(&k.as_ref()) {
                        (k.into_owned(), "****".to_owned())
                    } else {
                        (k.into_owned(), v.into_owned())
                    }
                })
                .collect();
            if !kept.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            parsed.to_string()
        }
        // Not a URL (a plain SQLite path): nothing in it is a password.
        Err(_) if !url.contains("://") => url.to_owned(),
        Err(_) => format!("{}://…", url.split("://").next().unwrap_or("?")),
    }
}

/// Normalises what the operator gave: a plain path becomes a `sqlite://` URL that creates
/// the file if missing.
fn normalise(url: &str) -> Result<(Backend, String), StoreError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if !url.is_empty() && !url.contains("://") {
        url
    } else {
        return Err(StoreError::BadUrl(url.to_owned()));
    };
    if path.is_empty() {
        return Err(StoreError::BadUrl(url.to_owned()));
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok((
        Backend::Sqlite,
        format!("sqlite://{path}?{}", params.join("&")),
    ))
}

/// The file of a SQLite database URL (`None` for PostgreSQL or a bad URL).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match normalise(url) {
        Ok((Backend::Sqlite, normalised)) => {
            let rest = normalised.strip_prefix("sqlite://")?;
            let path = rest.split_once('?').map_or(rest, |(path, _)| path);
            (path != ":memory:").then(|| std::path::PathBuf::from(path))
        }
        _ => None,
    }
}

fn connect_error(url: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::Connect {
        url: redact(url),
        reason: error.to_string(),
    }
}

/// One direct connection attempt: a wrong address fails at once instead of after a pool's
/// retries (which run until its acquire timeout).
async fn reach(url: &str) -> Result<(), StoreError> {
    sqlx::AnyConnection::connect(url)
        .await
        .map_err(|e| connect_error(url, &e))?
        .close()
        .await
        .map_err(|e| connect_error(url, &e))
}

/// The file of a normalised `sqlite://PATH?…` URL.
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let path = url.trim_start_matches("sqlite://");
    std::path::PathBuf::from(path.split_once('?').map_or(path, |(p, _)| p))
}

fn unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn tenant_from(row: &sqlx::any::AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: TenantId(row.try_get("id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn user_from(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get("id")?),
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        alexa_user_id: row.try_get("alexa_user_id")?,
        oauth_subject: row.try_get("oauth_subject")?,
        created_at: row.try_get("created_at")?,
    })
}

fn account_from(row: &sqlx::any::AnyRow) -> Result<LinkedAccount, sqlx::Error> {
    Ok(LinkedAccount {
        id: AccountId(row.try_get("id")?),
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        region: row.try_get("region")?,
        role_arn: Sealed::from_bytes(row.try_get("role_arn_sealed")?),
        external_id: Sealed::from_bytes(row.try_get("external_id_sealed")?),
        created_at: row.try_get("created_at")?,
    })
}

fn audit_from(row: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        challenge_id: row.try_get("challenge_id")?,
        actor: row.try_get("actor")?,
        summary: row.try_get("summary")?,
        digest: row.try_get("digest")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        aws_request_id: row.try_get("aws_request_id")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        format: row.try_get("format")?,
    })
}

const AUDIT_COLUMNS: &str = "seq, at, tenant_id, user_id, challenge_id, actor, summary, digest, \
                             outcome, detail, aws_request_id, prev_hash, hash, format";

fn challenge_from(row: &sqlx::any::AnyRow) -> Result<ChallengeRow, sqlx::Error> {
    Ok(ChallengeRow {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        account_id: row.try_get("account_id")?,
        operation: row.try_get("operation")?,
        summary: row.try_get("summary")?,
        digest: row.try_get("digest")?,
        state: row.try_get("state")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        wrong_codes: row.try_get("wrong_codes")?,
        used_step: row.try_get("used_step")?,
        closed_at: row.try_get("closed_at")?,
    })
}

const CHALLENGE_COLUMNS: &str = "id, tenant_id, user_id, account_id, operation, summary, digest, \
                                 state, created_at, expires_at, wrong_codes, used_step, closed_at";

const USER_COLUMNS: &str = "id, tenant_id, name, alexa_user_id, oauth_subject, created_at";
const ACCOUNT_COLUMNS: &str =
    "id, tenant_id, name, region, role_arn_sealed, external_id_sealed, created_at";

impl SqlStore {
    /// Connects without changing anything (no migrations, no journal mode, never creating
    /// a SQLite file), for `voxgate check-config`; with the number of migrations this
    /// version would apply. Only reads are safe on it, and only when none are pending.
    pub async fn connect_to_look(url: &str) -> Result<(Self, usize), StoreError> {
        install_default_drivers();
        let (backend, url) = normalise(url)?;
        let url = url.replace("mode=rwc", "mode=rw");
        let connect_error = |e: &dyn std::fmt::Display| connect_error(&url, e);
        reach(&url).await?;
        let pool = AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(10))
            .max_connections(1)
            .connect(&url)
            .await
            .map_err(|e| connect_error(&e))?;
        let applied: Vec<i64> =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&pool)
                .await
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r.try_get("version").ok())
                        .collect()
                })
                .unwrap_or_default();
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let pending = migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count();
        let sqlite_file = (backend == Backend::Sqlite).then(|| sqlite_path(&url));
        Ok((
            Self {
                ledger: pool.clone(),
                pool,
                writer: None,
                backend,
                sqlite_file,
                events: None,
            },
            pending,
        ))
    }

    /// Connects and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let (backend, url) = normalise(url)?;
        let connect_error = |e: &dyn std::fmt::Display| connect_error(&url, e);
        reach(&url).await?;
        let pool = AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(10))
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes
                        // concurrent writers wait instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| connect_error(&e))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| connect_error(&e))?;
        // PostgreSQL's replay ledger writes on a connection of its own whose commits do not
        // wait for the disk (synchronous_commit=off): nothing is ever corrupted, but a crash
        // (or failover) of the database server can lose up to about three wal_writer_delay
        // (600 ms by default) of recent ids, and a replay of those would have to arrive
        // within their 150 s window after the database is back. On SQLite the ledger's
        // packed rows are written by the process's writer with every other write (full
        // durability; see `super::group`). Every other write keeps full durability.
        let ledger = match backend {
            Backend::Sqlite => pool.clone(),
            Backend::Postgres => AnyPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_secs(10))
                .max_connections(1)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("SET synchronous_commit = off").await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .map_err(|e| connect_error(&e))?,
        };
        let events = match backend {
            Backend::Postgres => Some(listen(&url).await.map_err(|e| connect_error(&e))?),
            Backend::Sqlite => None,
        };
        let sqlite_file = (backend == Backend::Sqlite).then(|| sqlite_path(&url));
        let writer = (backend == Backend::Sqlite).then(|| GroupWriter::new(&url));
        Ok(Self {
            pool,
            ledger,
            writer,
            backend,
            sqlite_file,
            events,
        })
    }
}

impl SqlStore {
    /// The rows of `table` (`users`, `aws_accounts`) not removed: one tenant's, found
    /// through its index, or every tenant's.
    async fn live_of_tenant(
        &self,
        columns: &str,
        table: &str,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let (of_tenant, order) = match tenant {
            Some(_) => ("tenant_id = $1 AND ", "lower(name)"),
            None => ("", "tenant_id, lower(name)"),
        };
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE {of_tenant}removed_at IS NULL ORDER BY {order}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(tenant) = tenant {
            query = query.bind(tenant.as_str());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The user, not removed and of a tenant not removed, whose `column` (`alexa_user_id`,
    /// `oauth_subject`: unique) is `value`; `EXISTS` checks that one tenant by its key.
    async fn live_user_by(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = $1 AND removed_at IS NULL \
             AND EXISTS (SELECT 1 FROM tenants WHERE tenants.id = users.tenant_id \
             AND tenants.removed_at IS NULL)"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }
}

/// Listens on [`EVENT_CHANNEL`] and relays every notification; reconnects if the
/// connection drops (sqlx's listener does), and stops when nobody can receive any more.
async fn listen(url: &str) -> Result<tokio::sync::broadcast::Sender<String>, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(EVENT_CHANNEL).await?;
    let (sender, _) = tokio::sync::broadcast::channel(256);
    let relay = sender.clone();
    tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    let _ = relay.send(notification.payload().to_owned());
                }
                Err(error) => {
                    tracing::warn!(%error, "event listener lost its connection; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(sender)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    async fn claim_for_serving(&self) -> Result<Option<super::ServingClaim>, StoreError> {
        let Some(file) = &self.sqlite_file else {
            return Ok(None);
        };
        // One lock per database file, however it is named (a symlink or another relative
        // path to the same file must not make a second lock).
        let mut path = std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.clone())
            .into_os_string();
        path.push(".serve-lock");
        let lock_error = |e: std::io::Error| StoreError::Connect {
            url: file.display().to_string(),
            reason: format!("cannot open its serve lock: {e}"),
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_error)?;
        // A process that is stopping (a restart) gets a few seconds to let go.
        for _ in 0..100 {
            match lock.try_lock() {
                Ok(()) => return Ok(Some(super::ServingClaim(lock))),
                Err(std::fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
            }
        }
        Err(StoreError::AlreadyServed(file.display().to_string()))
    }

    async fn live_request_ids(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT request_id, expires_at FROM seen_requests WHERE expires_at >= $1")
                .bind(now)
                .fetch_all(&self.ledger)
                .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("request_id")?, r.try_get("expires_at")?)))
            .collect::<Result<_, _>>()?)
    }

    async fn live_request_digests(&self, now: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query("SELECT digests FROM seen_request_digests WHERE forget_after >= $1")
            .bind(now)
            .fetch_all(&self.ledger)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("digests"))
            .collect::<Result<_, _>>()?)
    }

    async fn record_request_digests(
        &self,
        forget_after: i64,
        packed: &[u8],
    ) -> Result<(), StoreError> {
        // With the process's other writes (SQLite's ledger is its only user): a write
        // beside the writer would wait in SQLite's busy handler, which sleeps in steps of
        // milliseconds.
        self.write_one(
            sqlx::query("INSERT INTO seen_request_digests (forget_after, digests) VALUES ($1, $2)")
                .bind(forget_after)
                .bind(packed.to_vec()),
        )
        .await?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants WHERE removed_at IS NULL ORDER BY lower(name)")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(tenant_from).collect::<Result<_, _>>()?)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM tenants WHERE lower(name) = lower($1) \
             AND removed_at IS NULL",
        )
        .bind(name.trim())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(tenant_from).transpose()?)
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM tenants WHERE id = $1 AND removed_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(tenant_from).transpose()?)
    }

    async fn users(&self, tenant: Option<&TenantId>) -> Result<Vec<User>, StoreError> {
        let rows = self.live_of_tenant(USER_COLUMNS, "users", tenant).await?;
        Ok(rows.iter().map(user_from).collect::<Result<_, _>>()?)
    }

    async fn user_by_alexa_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.live_user_by("alexa_user_id", id).await
    }

    async fn user_by_oauth_subject(&self, subject: &str) -> Result<Option<User>, StoreError> {
        self.live_user_by("oauth_subject", subject).await
    }

    async fn accounts(&self, tenant: Option<&TenantId>) -> Result<Vec<LinkedAccount>, StoreError> {
        let rows = self
            .live_of_tenant(ACCOUNT_COLUMNS, "aws_accounts", tenant)
            .await?;
        Ok(rows.iter().map(account_from).collect::<Result<_, _>>()?)
    }

    async fn publish_event(&self, payload: &str) -> Result<bool, StoreError> {
        if self.events.is_none() {
            return Ok(false);
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENT_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    fn event_feed(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.events
            .as_ref()
            .map(tokio::sync::broadcast::Sender::subscribe)
    }

    async fn record_request_ids(
        &self,
        sightings: &[(String, i64)],
    ) -> Result<Vec<bool>, StoreError> {
        if sightings.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the whole batch: each id is new exactly if this insert wrote
        // it, on any number of replicas.
        let values: Vec<String> = (0..sightings.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO seen_requests (request_id, expires_at) VALUES {} \
             ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, expires_at) in sightings {
            query = query.bind(id.as_str()).bind(*expires_at);
        }
        let inserted: std::collections::HashSet<String> = query
            .fetch_all(&self.ledger)
            .await?
            .iter()
            .map(|row| row.try_get("request_id"))
            .collect::<Result<_, _>>()?;
        Ok(sightings
            .iter()
            .map(|(id, _)| inserted.contains(id))
            .collect())
    }

    async fn forget_request_ids(&self, before: i64) -> Result<u64, StoreError> {
        let ids = self
            .write_one(sqlx::query("DELETE FROM seen_requests WHERE expires_at < $1").bind(before))
            .await?
            .rows_affected();
        let rows = self
            .write_one(
                sqlx::query("DELETE FROM seen_request_digests WHERE forget_after < $1")
                    .bind(before),
            )
            .await?
            .rows_affected();
        Ok(ids + rows)
    }

    async fn service_secret_once(&self, name: &str, sealed: &Sealed) -> Result<Sealed, StoreError> {
        let insert = sqlx::query("INSERT INTO service_secrets (name, sealed) VALUES ($1, $2)")
            .bind(name)
            .bind(sealed.as_bytes().to_vec());
        match self.write_one(insert).await {
            Ok(_) => {}
            Err(StoreError::Backend(e)) if unique_violation(&e) => {}
            Err(e) => return Err(e),
        }
        self.service_secret(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("service secret {name}")))
    }

    async fn service_secret(&self, name: &str) -> Result<Option<Sealed>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM service_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Vec<u8>, _>("sealed").map(Sealed::from_bytes))
            .transpose()?)
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND removed_at IS NULL"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn live_pairing_codes(&self, user: &UserId, now: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM pairing_codes WHERE user_id = $1 AND used_at IS NULL \
             AND voided_at IS NULL AND expires_at > $2",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn device_user(&self, token_hash: &str) -> Result<Option<(String, UserId)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id FROM devices WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, UserId(r.try_get("user_id")?))))
            .transpose()?)
    }

    async fn devices(&self, user: Option<&UserId>) -> Result<Vec<Device>, StoreError> {
        let rows = match user {
            Some(user) => sqlx::query(
                "SELECT id, user_id, created_at, revoked_at FROM devices \
                 WHERE user_id = $1 ORDER BY created_at",
            )
            .bind(user.as_str()),
            None => sqlx::query(
                "SELECT id, user_id, created_at, revoked_at FROM devices ORDER BY created_at",
            ),
        }
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(device_from).collect::<Result<_, _>>()?)
    }

    async fn device(&self, device_id: &str) -> Result<Option<Device>, StoreError> {
        let row =
            sqlx::query("SELECT id, user_id, created_at, revoked_at FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(device_from).transpose()?)
    }

    async fn totp_key(&self, user: &UserId) -> Result<Option<Sealed>, StoreError> {
        let row =
            sqlx::query("SELECT totp_key_sealed FROM users WHERE id = $1 AND removed_at IS NULL")
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let bytes: Option<Vec<u8>> = row.try_get("totp_key_sealed")?;
        Ok(bytes.map(Sealed::from_bytes))
    }

    async fn set_totp_key_once(&self, user: &UserId, key: &Sealed) -> Result<Sealed, StoreError> {
        self.write_one(
            sqlx::query(
                "UPDATE users SET totp_key_sealed = $1 WHERE id = $2 AND totp_key_sealed IS NULL \
             AND removed_at IS NULL",
            )
            .bind(key.as_bytes().to_vec())
            .bind(user.as_str()),
        )
        .await?;
        self.totp_key(user)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user}")))
    }

    async fn challenge(&self, id: &str) -> Result<Option<ChallengeRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(challenge_from).transpose()?)
    }

    async fn recently_approved(
        &self,
        user: &UserId,
        since: i64,
    ) -> Result<Vec<ChallengeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE user_id = $1 AND used_step IS NOT NULL \
             AND closed_at >= $2 ORDER BY closed_at DESC LIMIT 20"
        ))
        .bind(user.as_str())
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(challenge_from).collect::<Result<_, _>>()?)
    }

    async fn pending_challenges(&self, user: &UserId) -> Result<Vec<ChallengeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE user_id = $1 AND state = 'pending' \
             ORDER BY created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(challenge_from).collect::<Result<_, _>>()?)
    }

    async fn stale_approved(&self, before: i64) -> Result<Vec<ChallengeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE state = 'approved' AND closed_at < $1 \
             ORDER BY closed_at LIMIT 500"
        ))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(challenge_from).collect::<Result<_, _>>()?)
    }

    async fn due_challenges(&self, now: i64) -> Result<Vec<ChallengeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE state = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT 500"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(challenge_from).collect::<Result<_, _>>()?)
    }

    async fn take_check_turn(
        &self,
        id: &str,
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let take = sqlx::query(
            "UPDATE challenges SET checking_until = $1, checking_owner = $2 WHERE id = $3 \
             AND state = 'pending' AND (checking_until IS NULL OR checking_until <= $4)",
        )
        .bind(until)
        .bind(owner)
        .bind(id)
        .bind(now);
        let result = self.write_one(take).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_check_turn(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        self.write_one(
            sqlx::query(
                "UPDATE challenges SET checking_until = NULL, checking_owner = NULL \
             WHERE id = $1 AND checking_owner = $2",
            )
            .bind(id)
            .bind(owner),
        )
        .await?;
        Ok(())
    }

    async fn user_locked_until(&self, user: &UserId) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT locked_until FROM user_failures WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("locked_until")).transpose()?)
    }

    async fn audit_records(
        &self,
        tenant: Option<&TenantId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // Audit records may have no tenant, so "all" must not compare tenant_id at all.
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 \
             AND ($2 IS NULL OR tenant_id = $2) ORDER BY seq LIMIT $3"
        ))
        .bind(after_seq)
        .bind(tenant.map(|t| t.as_str().to_owned()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_from).collect::<Result<_, _>>()?)
    }

    async fn audit_of_challenge(&self, challenge_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE challenge_id = $1 ORDER BY seq"
        ))
        .bind(challenge_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_from).collect::<Result<_, _>>()?)
    }

    async fn audit_tail(
        &self,
        tenant: Option<&TenantId>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR tenant_id = $1) \
             ORDER BY seq DESC LIMIT $2"
        ))
        .bind(tenant.map(|t| t.as_str().to_owned()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut records: Vec<_> = rows.iter().map(audit_from).collect::<Result<_, _>>()?;
        records.reverse();
        Ok(records)
    }

    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()?)
    }

    async fn audit_record(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq = $1"
        ))
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(audit_from).transpose()?)
    }

    async fn append_audit(
        &self,
        draft: &AuditDraft,
        chain: &dyn ChainSealer,
    ) -> Result<AuditRecord, StoreError> {
        let mut tx = self.begin().await?;
        let record = tx.append_audit(draft, chain).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        Ok(Box::new(self.begin_sql().await?))
    }
}

impl SqlStore {
    /// Starts a write transaction: on SQLite in the group of the process's writes, on
    /// PostgreSQL one of its own.
    async fn begin_sql(&self) -> Result<SqlTx, StoreError> {
        let tx = match (&self.writer, self.backend) {
            (Some(writer), _) => Writing::Grouped(writer.begin().await?),
            // Take SQLite's write lock at once: a transaction that reads first and writes
            // later could not upgrade its lock when another writer got there first.
            (None, Backend::Sqlite) => Writing::Own(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            (None, Backend::Postgres) => Writing::Own(self.pool.begin().await?),
        };
        Ok(SqlTx {
            tx,
            backend: self.backend,
        })
    }

    /// Runs one writing statement: on SQLite in the group of the process's writes (a
    /// write beside it would wait for SQLite's lock), on PostgreSQL on the pool.
    async fn write_one<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, StoreError> {
        if self.writer.is_none() {
            return Ok(query.execute(&self.pool).await?);
        }
        let mut tx = Box::new(self.begin_sql().await?);
        match query.execute(tx.conn()).await {
            Ok(done) => {
                tx.commit().await?;
                Ok(done)
            }
            Err(error) => {
                // Rolled back before the error is returned, with the batch it ran in
                // committed: a caller that reads next (after a unique violation, the row
                // that was there first) sees what this statement saw.
                tx.rollback().await?;
                Err(error.into())
            }
        }
    }
}

fn device_from(row: &sqlx::any::AnyRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A transaction on the SQL store; rolled back if dropped uncommitted.
struct SqlTx {
    tx: Writing,
    backend: Backend,
}

/// How a transaction writes.
enum Writing {
    /// On SQLite: in the process's group of write transactions.
    Grouped(Member),
    /// On PostgreSQL: a transaction of its own.
    Own(sqlx::Transaction<'static, sqlx::Any>),
}

impl SqlTx {
    /// The connection to run this transaction's statements on.
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.tx {
            Writing::Grouped(member) => member.conn(),
            Writing::Own(tx) => tx,
        }
    }

    /// Challenges of a user or an account (`column`) still waiting for a code (not past
    /// their time) or running.
    async fn active_operations(
        &mut self,
        column: &str,
        id: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM challenges WHERE {column} = $1 \
             AND ((state = 'pending' AND expires_at > $2) OR state = 'approved')"
        ))
        .bind(id)
        .bind(now)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Whether the record `id` of `table` (tenants, users, aws_accounts) exists and is not
    /// removed. On PostgreSQL the row is share-locked until the transaction ends, so a
    /// concurrent removal waits for this one (and this one for it); SQLite transactions
    /// are serial already (BEGIN IMMEDIATE).
    async fn live(&mut self, table: &str, id: &str) -> Result<bool, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT 1 AS one FROM {table} WHERE id = $1 AND removed_at IS NULL{lock}"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl StoreTx for SqlTx {
    async fn insert_challenge(&mut self, c: &ChallengeRow) -> Result<(), StoreError> {
        if !self.live("users", c.user_id.as_str()).await?
            || !self.live("aws_accounts", c.account_id.as_str()).await?
        {
            return Err(StoreError::NotFound(
                "the user or the account was removed".into(),
            ));
        }
        sqlx::query(&format!(
            "INSERT INTO challenges ({CHALLENGE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(c.id.as_str())
        .bind(c.tenant_id.as_str())
        .bind(c.user_id.as_str())
        .bind(c.account_id.as_str())
        .bind(c.operation.as_str())
        .bind(c.summary.as_str())
        .bind(c.digest.as_str())
        .bind(c.state.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.wrong_codes)
        .bind(c.used_step)
        .bind(c.closed_at)
        .execute(self.conn())
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Duplicate("a pending challenge for this user".into())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn approve_challenge(
        &mut self,
        id: &str,
        step: i64,
        now: i64,
        max_wrong: i64,
    ) -> Result<bool, StoreError> {
        // One statement: the row moves for exactly one caller, on any number of replicas.
        // A challenge that used up its wrong codes is not approved by a guess that raced
        // past the limit, nor is one whose time is up.
        let result = sqlx::query(
            "UPDATE challenges SET state = 'approved', used_step = $1, closed_at = $2 \
             WHERE id = $3 AND state = 'pending' AND expires_at > $2 AND wrong_codes < $4",
        )
        .bind(step)
        .bind(now)
        .bind(id)
        .bind(max_wrong)
        .execute(self.conn())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn move_challenge(
        &mut self,
        id: &str,
        from: &[&str],
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        for state in from {
            let result = sqlx::query(
                "UPDATE challenges SET state = $1, closed_at = COALESCE(closed_at, $2) \
                 WHERE id = $3 AND state = $4",
            )
            .bind(to)
            .bind(now)
            .bind(id)
            .bind(*state)
            .execute(self.conn())
            .await?;
            if result.rows_affected() == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn count_wrong_code(&mut self, id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE challenges SET wrong_codes = wrong_codes + 1 WHERE id = $1 AND state = 'pending' \
             RETURNING wrong_codes",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("wrong_codes")).transpose()?)
    }

    async fn count_user_failure(&mut self, user: &UserId) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO user_failures (user_id, failures, locked_until) VALUES ($1, 1, 0) \
             ON CONFLICT (user_id) DO UPDATE SET failures = user_failures.failures + 1 \
             RETURNING failures",
        )
        .bind(user.as_str())
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("failures")?)
    }

    async fn lock_user(&mut self, user: &UserId, until: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE user_failures SET locked_until = $1 WHERE user_id = $2")
            .bind(until)
            .bind(user.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn reset_user_failures(&mut self, user: &UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_failures WHERE user_id = $1")
            .bind(user.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn add_pairing_code(
        &mut self,
        code_hash: &str,
        user: &UserId,
        expires_at: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let voided = sqlx::query(
            "UPDATE pairing_codes SET voided_at = $1 \
             WHERE user_id = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(user.as_str())
        .execute(self.conn())
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO pairing_codes (code_hash, user_id, expires_at, used_at, voided_at) \
             VALUES ($1, $2, $3, NULL, NULL)",
        )
        .bind(code_hash)
        .bind(user.as_str())
        .bind(expires_at)
        .execute(self.conn())
        .await?;
        Ok(voided)
    }

    async fn use_pairing_code(
        &mut self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        // One statement: a code pairs one device, once, even when two race.
        let row = sqlx::query(
            "UPDATE pairing_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
             AND voided_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("user_id").map(UserId)).transpose()?)
    }

    async fn add_device(
        &mut self,
        device_id: &str,
        user: &UserId,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (id, user_id, token_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(device_id)
        .bind(user.as_str())
        .bind(token_hash)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn revoke_device(&mut self, device_id: &str, now: i64) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(device_id)
                .execute(self.conn())
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_tenant(&mut self, name: &TenantName, now: i64) -> Result<Tenant, StoreError> {
        let id = TenantId::generate();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(now)
            .execute(self.conn())
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    StoreError::Duplicate(format!("a tenant named '{name}'"))
                } else {
                    e.into()
                }
            })?;
        Ok(Tenant {
            id,
            name: name.as_str().to_owned(),
            created_at: now,
        })
    }

    async fn add_user(&mut self, user: &NewUser, now: i64) -> Result<User, StoreError> {
        if !self.live("tenants", user.tenant_id.as_str()).await? {
            return Err(StoreError::NotFound("the tenant was removed".into()));
        }
        let id = UserId::generate();
        let alexa = user.alexa_user_id.as_ref().map(|a| a.as_str().to_owned());
        let oauth = user.oauth_subject.as_ref().map(|s| s.as_str().to_owned());
        sqlx::query(
            "INSERT INTO users (id, tenant_id, name, alexa_user_id, oauth_subject, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.as_str())
        .bind(user.tenant_id.as_str())
        .bind(user.name.as_str())
        .bind(alexa.clone())
        .bind(oauth.clone())
        .bind(now)
        .execute(self.conn())
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Duplicate(format!(
                    "a user with that name in this tenant, or with that Alexa user id or OAuth \
                     subject ('{}')",
                    user.name
                ))
            } else {
                e.into()
            }
        })?;
        Ok(User {
            id,
            tenant_id: user.tenant_id.clone(),
            name: user.name.as_str().to_owned(),
            alexa_user_id: alexa,
            oauth_subject: oauth,
            created_at: now,
        })
    }

    async fn add_account(
        &mut self,
        account: &NewAccount,
        now: i64,
    ) -> Result<LinkedAccount, StoreError> {
        if !self.live("tenants", account.tenant_id.as_str()).await? {
            return Err(StoreError::NotFound("the tenant was removed".into()));
        }
        sqlx::query(
            "INSERT INTO aws_accounts (id, tenant_id, name, region, role_arn_sealed, \
             external_id_sealed, external_id_digest, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(account.id.as_str())
        .bind(account.tenant_id.as_str())
        .bind(account.name.as_str())
        .bind(account.region.as_str())
        .bind(account.role_arn.as_bytes().to_vec())
        .bind(account.external_id.as_bytes().to_vec())
        .bind(account.external_id_digest.as_str())
        .bind(now)
        .execute(self.conn())
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Duplicate(format!(
                    "an account named '{}' in this tenant",
                    account.name
                ))
            } else {
                e.into()
            }
        })?;
        Ok(LinkedAccount {
            id: account.id.clone(),
            tenant_id: account.tenant_id.clone(),
            name: account.name.as_str().to_owned(),
            region: account.region.clone(),
            role_arn: account.role_arn.clone(),
            external_id: account.external_id.clone(),
            created_at: now,
        })
    }

    async fn remove_tenant(&mut self, id: &TenantId, now: i64) -> Result<Removal, StoreError> {
        let marked =
            sqlx::query("UPDATE tenants SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL")
                .bind(now)
                .bind(id.as_str())
                .execute(self.conn())
                .await?;
        if marked.rows_affected() == 0 {
            return Ok(Removal::Missing);
        }
        let left = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND removed_at IS NULL) \
             AS users, (SELECT COUNT(*) FROM aws_accounts WHERE tenant_id = $1 \
             AND removed_at IS NULL) AS accounts",
        )
        .bind(id.as_str())
        .fetch_one(self.conn())
        .await?;
        let (users, accounts): (i64, i64) = (left.try_get("users")?, left.try_get("accounts")?);
        if users + accounts > 0 {
            return Ok(Removal::NotEmpty { users, accounts });
        }
        Ok(Removal::Removed)
    }

    async fn remove_user(&mut self, id: &UserId, now: i64) -> Result<Removal, StoreError> {
        let marked = sqlx::query(
            "UPDATE users SET removed_at = $1, alexa_user_id = NULL, oauth_subject = NULL, \
             totp_key_sealed = NULL WHERE id = $2 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(self.conn())
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(Removal::Missing);
        }
        let operations = self.active_operations("user_id", id.as_str(), now).await?;
        if operations > 0 {
            return Ok(Removal::Busy { operations });
        }
        // Codes first: a pairing that took a code before this waits on it and then its new
        // device is revoked below; one after finds the code void.
        sqlx::query(
            "UPDATE pairing_codes SET voided_at = $1 WHERE user_id = $2 AND used_at IS NULL \
             AND voided_at IS NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(self.conn())
        .await?;
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id.as_str())
            .execute(self.conn())
            .await?;
        Ok(Removal::Removed)
    }

    async fn unlink_account(&mut self, id: &AccountId, now: i64) -> Result<Removal, StoreError> {
        let marked = sqlx::query(
            "UPDATE aws_accounts SET removed_at = $1, role_arn_sealed = $2, \
             external_id_sealed = $2 WHERE id = $3 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(Vec::<u8>::new())
        .bind(id.as_str())
        .execute(self.conn())
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(Removal::Missing);
        }
        let operations = self
            .active_operations("account_id", id.as_str(), now)
            .await?;
        if operations > 0 {
            return Ok(Removal::Busy { operations });
        }
        Ok(Removal::Removed)
    }

    async fn append_audit(
        &mut self,
        draft: &AuditDraft,
        chain: &dyn ChainSealer,
    ) -> Result<AuditRecord, StoreError> {
        // Taking the head is a write, so concurrent appenders (on any replica) line up
        // behind this transaction instead of racing for the next sequence number.
        let head =
            sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(self.conn())
                .await?;
        let seq: i64 = head.try_get("seq")?;
        let prev_hash: String = head.try_get("hash")?;
        let record = chain.seal(draft, seq, &prev_hash);
        sqlx::query(&format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(record.seq)
        .bind(record.at)
        .bind(record.tenant_id.clone())
        .bind(record.user_id.clone())
        .bind(record.challenge_id.clone())
        .bind(record.actor.clone())
        .bind(record.summary.as_str())
        .bind(record.digest.as_str())
        .bind(record.outcome.as_str())
        .bind(record.detail.as_str())
        .bind(record.aws_request_id.clone())
        .bind(record.prev_hash.as_str())
        .bind(record.hash.as_str())
        .bind(record.format)
        .execute(self.conn())
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Duplicate(format!(
                    "audit record {} (the chain's head does not match the log)",
                    record.seq
                ))
            } else {
                e.into()
            }
        })?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(record.hash.as_str())
            .execute(self.conn())
            .await?;
        Ok(record)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match self.tx {
            Writing::Grouped(member) => member.commit().await,
            Writing::Own(tx) => Ok(tx.commit().await?),
        }
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        match self.tx {
            Writing::Grouped(member) => member.rollback().await,
            Writing::Own(tx) => Ok(tx.rollback().await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_normalised() {
        assert_eq!(
            normalise("voxgate.db").expect("ok"),
            (Backend::Sqlite, "sqlite://voxgate.db?mode=rwc".into())
        );
        assert_eq!(
            normalise("sqlite:///tmp/x.db").expect("ok"),
            (Backend::Sqlite, "sqlite:///tmp/x.db?mode=rwc".into())
        );
        assert_eq!(
            normalise("sqlite://x.db?mode=ro").expect("ok"),
            (Backend::Sqlite, "sqlite://x.db?mode=ro".into())
        );
        assert_eq!(
            normalise("postgres://u@h/db").expect("ok").0,
            Backend::Postgres
        );
        assert!(normalise("mysql://x").is_err());
        assert!(normalise("").is_err());
    }

    #[test]
    fn passwords_are_redacted_from_messages() {
        assert_eq!(
            redact("postgres://user:hunter2@host/db"),
            "postgres://user:****@host/db"
        );
        // sqlx also takes the password (and a key's) from the query.
        let redacted = redact("postgres://user@host/db?password=hunter2&sslmode=require");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("sslmode=require"), "{redacted}");
        assert!(!redact("postgres://user:hunter2@[bad/db").contains("hunter2"));
        assert_eq!(redact("voxgate.db"), "voxgate.db");
    }
}
