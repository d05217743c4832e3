//! `--state`: where a sweep's shared state lives (PostgreSQL), its name, and the failures of
//! reaching it as the commands report them.

use crate::error::{CommandFailure, Exit};
use crate::store::postgres::{self, StateError, Sweep};
use std::path::Path;

/// The environment variable that gives `--state` when the flag is not given.
pub(crate) const STATE_ENV: &str = "KLING_BATCH_STATE";

/// The state database asked for: the flag, else `$KLING_BATCH_STATE`; refused unless it is a
/// PostgreSQL address.
pub(crate) fn state_url(flag: Option<String>) -> Result<Option<String>, CommandFailure> {
    let url = flag.or_else(|| std::env::var(STATE_ENV).ok().filter(|v| !v.trim().is_empty()));
    match url {
        Some(url) if !postgres::is_postgres_url(&url) => Err(CommandFailure::new(
            Exit::Usage,
            format!("--state takes a PostgreSQL address, not `{}`", postgres::redact(&url)),
        )
        .hint("write --state postgres://user@host:5432/database (or leave it out: the output folder keeps the state)")),
        other => Ok(other),
    }
}

/// A sweep's name: `--run NAME`, else the output folder's absolute path.
pub(crate) fn sweep_name(run_name: Option<&str>, out: &Path) -> String {
    match run_name {
        Some(name) => name.to_string(),
        None => std::path::absolute(out)
            .unwrap_or_else(|_| out.to_path_buf())
            .display()
            .to_string(),
    }
}

pub(crate) fn failure(e: StateError) -> CommandFailure {
    let exit = match e {
        StateError::Newer { .. } | StateError::DifferentPlan { .. } => Exit::Invalid,
        StateError::Unreachable { .. } | StateError::Db(_) => Exit::Failure,
    };
    let hint = e.hint();
    CommandFailure::new(exit, e).hint(hint)
}

/// Connects and brings the schema up to date.
pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, CommandFailure> {
    let mut client = postgres::connect(url).await.map_err(failure)?;
    postgres::migrate(&mut client).await.map_err(failure)?;
    Ok(client)
}

/// The registered sweep `name`, for `status` and `report`.
pub(crate) async fn find(client: &tokio_postgres::Client, name: &str) -> Result<Sweep, CommandFailure> {
    match Sweep::find(client, name).await.map_err(failure)? {
        Some(sweep) => Ok(sweep),
        None => Err(
            CommandFailure::new(Exit::Invalid, format!("the state database has no sweep named `{name}`"))
                .hint("give the --out folder (or --run NAME) the workers were started with"),
        ),
    }
}
