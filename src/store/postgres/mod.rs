//! Shared run state on PostgreSQL (`--state postgres://…`): several workers, on any machines, work
//! one sweep. The database holds what the local journal holds — the same records, appended, never
//! rewritten, folded by the same fold — plus what workers share: which worker holds which job
//! (claims with leases, each claim fenced by a number that only grows), the spend against one
//! cap, and a pause after a 429.
//!
//! `schema` versions the tables; `sweep` registers a sweep and reads it back; `writer` is the
//! `RunStore` (records appended in groups, a submit intent committed — and checked against the cap —
//! before its POST).

mod changes;
mod commit;
mod link;
mod schema;
mod sweep;
mod work;
mod writer;

pub use link::DEFAULT_DEADLINE;
pub use schema::{SCHEMA_VERSION, migrate};
pub use sweep::{CapChange, Sweep, plan_digest};
pub use work::{Claimed, SweepTotals, WorkerRow};
pub use writer::PgRunStore;

use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// What working with the state database can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot reach the state database at {at}: {message}")]
    Unreachable { at: String, message: String },
    #[error("the state database was set up by a newer kling-batch (schema version {found}; this one knows {known})")]
    Newer { found: i32, known: i32 },
    #[error(
        "sweep `{name}` in the state database was registered from a different manifest ({registered} jobs; this one plans {planned})"
    )]
    DifferentPlan {
        name: String,
        registered: i64,
        planned: usize,
    },
    #[error("the state database answered: {0}")]
    Db(String),
}

impl StateError {
    pub fn hint(&self) -> &'static str {
        match self {
            StateError::Unreachable { .. } => {
                "check the address in --state (or KLING_BATCH_STATE) and that the server runs and takes connections"
            }
            StateError::Newer { .. } => "use the kling-batch that set up this database, or a newer one",
            StateError::DifferentPlan { .. } => {
                "run the manifest the sweep was started with, or give this one its own --run NAME (or --out)"
            }
            StateError::Db(_) => "check the database's log; a rerun resumes from what it holds",
        }
    }
}

impl From<tokio_postgres::Error> for StateError {
    fn from(e: tokio_postgres::Error) -> StateError {
        // A database error's own text (never the connection string).
        match e.as_db_error() {
            Some(db) => StateError::Db(format!("{} ({})", db.message(), db.code().code())),
            None => StateError::Db(e.to_string()),
        }
    }
}

/// The address with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    // URL form: postgres://user:password@host/db
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // Key-value form, and `?password=` in a URL's query.
    let mut redacted = String::with_capacity(out.len());
    for (i, part) in out.split_inclusive(['&', ' ', '?']).enumerate() {
        let _ = i;
        match part.to_ascii_lowercase().find("password=") {
            Some(p) => {
                let end = part.find(['&', ' ', '?']).filter(|e| *e > p).unwrap_or(part.len());
                redacted.push_str(&part[..p + "password=".len()]);
                redacted.push_str("***");
                redacted.push_str(&part[end..]);
            }
            None => redacted.push_str(part),
        }
    }
    redacted
}

/// Whether `text` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Opens a connection within `deadline` — its socket and its start-up each — on which silence
/// after a statement longer than `deadline` fails the connection (`link`); its driver runs as a
/// task on the current runtime.
pub async fn connect(url: &str, deadline: Duration) -> Result<Client, StateError> {
    let unreachable = |message: String| StateError::Unreachable {
        at: redact(url),
        message,
    };
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| unreachable(e.to_string()))?;
    let ports = config.get_ports();
    let mut last = String::from("the URL names no host");
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let opened = match host {
            tokio_postgres::config::Host::Tcp(name) => {
                let stream = async {
                    let stream = tokio::net::TcpStream::connect((name.as_str(), port)).await?;
                    stream.set_nodelay(true)?;
                    Ok(stream)
                };
                attempt(&config, stream, deadline).await
            }
            tokio_postgres::config::Host::Unix(dir) => {
                let socket = dir.join(format!(".s.PGSQL.{port}"));
                attempt(&config, tokio::net::UnixStream::connect(socket), deadline).await
            }
        };
        match opened {
            Ok(client) => return Ok(client),
            Err(message) => last = message,
        }
    }
    Err(unreachable(last))
}

/// One host: its stream opened and its session started, each within `deadline`.
async fn attempt<S>(
    config: &tokio_postgres::Config,
    stream: impl std::future::Future<Output = std::io::Result<S>>,
    deadline: Duration,
) -> Result<Client, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stream = match tokio::time::timeout(deadline, stream).await {
        Err(_) => return Err(format!("connecting took longer than {} s", deadline.as_secs_f64())),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(stream)) => stream,
    };
    start(config, link::Deadlined::new(stream, deadline), deadline).await
}

/// The start-up on an open stream, within `deadline`; the driver spawned. `Err`: why not.
async fn start<S>(config: &tokio_postgres::Config, stream: S, deadline: Duration) -> Result<Client, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = match tokio::time::timeout(deadline, config.connect_raw(stream, NoTls)).await {
        Err(_) => {
            return Err(format!(
                "starting the session took longer than {} s",
                deadline.as_secs_f64()
            ));
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(pair)) => pair,
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "state database connection ended");
        }
    });
    Ok(client)
}

/// A connection that is opened again when it broke (a database restart, a dropped link).
pub struct Conn {
    url: String,
    client: Option<Client>,
    deadline: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address may hold a password: never printed.
        f.debug_struct("Conn")
            .field("at", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// `client` (opened with `deadline`), and new ones opened alike when it breaks.
    pub fn new(url: &str, client: Client, deadline: Duration) -> Conn {
        Conn {
            url: url.to_string(),
            client: Some(client),
            deadline,
        }
    }

    pub async fn get(&mut self) -> Result<&mut Client, StateError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some(connect(&self.url, self.deadline).await?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StateError::Db("no connection".into()))
    }

    /// Forgets a connection that failed, so the next `get` opens a new one.
    pub fn reset(&mut self) {
        self.client = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_in_messages() {
        assert_eq!(
            redact("postgres://kb:s3cret@db:5432/sweeps"),
            "postgres://kb:***@db:5432/sweeps"
        );
        assert_eq!(redact("postgres://kb@db/sweeps"), "postgres://kb@db/sweeps");
        assert_eq!(
            redact("postgresql://db/sweeps?user=kb&password=s3cret&sslmode=require"),
            "postgresql://db/sweeps?user=kb&password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=db password=s3cret user=kb"),
            "host=db password=*** user=kb"
        );
        assert!(is_postgres_url("postgres://x") && is_postgres_url("PostgreSQL://x") && !is_postgres_url("/tmp/x"));
    }
}
