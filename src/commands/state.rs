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

/// Connects (every wait within `deadline`) and brings the schema up to date.
pub(crate) async fn connect(
    url: &str,
    deadline: std::time::Duration,
) -> Result<tokio_postgres::Client, CommandFailure> {
    let mut client = postgres::connect(url, deadline).await.map_err(failure)?;
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

/// The file a shared sweep's workers leave in its output folder: which sweep the folder is, and
/// where its state lives (the database's address without its password), so that `status` and a
/// run without `--state` can say how to point at it.
pub(crate) const SWEEP_MARKER: &str = "sweep.json";

/// A database address as the marker keeps it: no password, in either form.
fn without_password(url: &str) -> String {
    postgres::redact(url).replace(":***@", "@")
}

/// A shared sweep's identity, kept with its output: whatever path the folder is reached by, it is
/// this sweep, in this database, whose idempotency keys all derive from this run id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SweepMarker {
    pub sweep: String,
    /// The database's address, without its password.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The marker in `dir`, if there is one it can read.
pub(crate) fn read_marker(dir: &Path) -> Option<SweepMarker> {
    let text = std::fs::read_to_string(dir.join(SWEEP_MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the marker into a shared sweep's folder once, at its first worker (a failure is a
/// warning: the database has it all); a marker already there is the folder's identity and stays.
pub(crate) fn write_marker(
    out: &crate::output::folder::OutDir,
    sweep: &Sweep,
    url: &str,
    stderr: &mut dyn std::io::Write,
) {
    if read_marker(out.root()).is_some() {
        return;
    }
    let marker = SweepMarker {
        sweep: sweep.name.clone(),
        state: without_password(url),
        run_id: Some(sweep.run_id.clone()),
    };
    let text = serde_json::to_string_pretty(&marker).unwrap_or_default() + "\n";
    if let Err(e) = out.write_atomic(SWEEP_MARKER, text.as_bytes()) {
        let _ = writeln!(stderr, "warning: cannot write {SWEEP_MARKER}: {e}");
    }
}

/// When `dir` is a shared sweep's folder, the failure that says where its state lives and how to
/// point at it (`--state`, or `KLING_BATCH_STATE`); exit 64, the command line lacks it.
pub(crate) fn shared_folder(dir: &Path) -> Option<CommandFailure> {
    let marker = read_marker(dir)?;
    let sweep = &marker.sweep;
    // (Whatever the file says, no password is shown.)
    let state = without_password(&marker.state);
    Some(
        CommandFailure::new(
            Exit::Usage,
            format!(
                "{} is the output folder of shared sweep `{sweep}`, whose state is in the database at {state}",
                dir.display()
            ),
        )
        .hint(format!(
            "add --state {state} (with its password, if it needs one), or set {STATE_ENV} to it"
        )),
    )
}
