//! A fresh database per test: a SQLite file in a temporary directory, or a new PostgreSQL
//! database on the local server (VOXGATE_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres), dropped afterwards.

use sqlx::Connection as _;

/// Which store backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

fn admin_url() -> String {
    std::env::var("VOXGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("voxgate.db").display());
                Self {
                    url,
                    backend,
                    dir,
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("voxgate_test_{}", super::unique_suffix());
                let admin = admin_url();
                let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is needed for the postgres half of the suite and is not \
                         reachable at {admin}: {e}. Start it, or set VOXGATE_TEST_DATABASE_URL."
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    backend,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A second handle on the same database (another replica), which does not drop it.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            dir: tempfile::tempdir().unwrap(),
            pg_name: None,
        }
        .with_key_from(self)
    }

    /// Copies the local sealing key, so a replica opens what the first one sealed.
    fn with_key_from(self, other: &TestDb) -> TestDb {
        let key = other.dir.path().join("voxgate.key");
        if key.exists() {
            std::fs::copy(&key, self.dir.path().join("voxgate.key")).unwrap();
        }
        self
    }

    /// An empty stand-in, for moving a database out of a server.
    pub fn placeholder() -> TestDb {
        TestDb {
            url: String::new(),
            backend: Backend::Sqlite,
            dir: tempfile::tempdir().unwrap(),
            pg_name: None,
        }
    }

    /// The SQLite file, for scanning its bytes.
    pub fn sqlite_file(&self) -> std::path::PathBuf {
        self.dir.path().join("voxgate.db")
    }

    /// Every byte the database holds, for secret scans (SQLite: file and WAL; PostgreSQL:
    /// a dump of every table as text).
    pub async fn all_bytes(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut bytes = Vec::new();
                for suffix in ["", "-wal"] {
                    let path = format!("{}{suffix}", self.sqlite_file().display());
                    bytes.extend(std::fs::read(path).unwrap_or_default());
                }
                bytes
            }
            Backend::Postgres => {
                let mut conn = sqlx::postgres::PgConnection::connect(&self.url)
                    .await
                    .unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let mut bytes = Vec::new();
                for table in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
                            .fetch_all(&mut conn)
                            .await
                            .unwrap();
                    for row in rows {
                        bytes.extend(row.into_bytes());
                    }
                }
                bytes
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
