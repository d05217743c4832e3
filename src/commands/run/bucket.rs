//! `run --out s3://bucket/prefix`: the output location in object storage, the checkpoint's own
//! place (`--state`), the probe before anything is spent, and the run's documents (results.csv,
//! report.html, summary.json) put as whole objects beside the videos.

use crate::cli::RunArgs;
use crate::error::{CommandFailure, Exit};
use crate::output::bucket::{Bucket, BucketError, BucketUrl};
use crate::output::folder::OutDir;
use std::io::Write;

/// Splits `--out` and `--state`: with an `s3://` out, the bucket, and `--state` becomes where the
/// checkpoint lives (a local folder for the journal — then the run's folder — or a database).
/// Returns the bucket and the database address to use, if any.
pub(super) fn split_out_and_state(args: &mut RunArgs) -> Result<(Option<BucketUrl>, Option<String>), CommandFailure> {
    let out = args.out.to_string_lossy().into_owned();
    let state = args.state.clone().or_else(|| {
        std::env::var(crate::commands::state::STATE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    let is_db = state.as_deref().is_some_and(crate::store::postgres::is_postgres_url);
    if !out.starts_with("s3://") {
        if let Some(folder) = state.as_ref().filter(|_| !is_db) {
            return Err(CommandFailure::new(
                Exit::Usage,
                format!("--state {folder} is for an s3:// --out: a local --out keeps its own journal"),
            )
            .hint("leave --state out, or give it a postgres:// address to share the sweep"));
        }
        return Ok((None, state));
    }
    let url = BucketUrl::parse(&out).map_err(|e| {
        CommandFailure::new(Exit::Usage, format!("--out {out}: {e}")).hint("write --out s3://bucket/prefix")
    })?;
    match state {
        None => Err(CommandFailure::new(
            Exit::Usage,
            format!("--out {url} needs a place for the run's checkpoint"),
        )
        .hint("give --state DIR (a local folder for the journal) or --state postgres://… (shared)")),
        Some(db) if is_db => Ok((Some(url), Some(db))),
        Some(folder) => {
            // The folder is the run's folder (journal, lock, manifest copy); the bucket has the rest.
            args.out = std::path::PathBuf::from(folder);
            Ok((Some(url), None))
        }
    }
}

pub(crate) fn failure(e: BucketError) -> CommandFailure {
    let exit = match e {
        BucketError::Credentials(_) => Exit::Auth,
        BucketError::NoBucket { .. } => Exit::Invalid,
        BucketError::Transient(_) | BucketError::Refused(_) => Exit::Failure,
    };
    let hint = e.hint();
    CommandFailure::new(exit, format!("{e}; nothing was created or billed")).hint(hint)
}

/// The bucket, from the `AWS_*` environment, once a probe object was written and deleted there.
pub(super) async fn probe(url: &BucketUrl) -> Result<Bucket, CommandFailure> {
    let bucket = Bucket::from_env(url).map_err(failure)?;
    bucket.probe().await.map_err(failure)?;
    Ok(bucket)
}

/// Where the run's documents go: the output folder, or the bucket (each a whole object).
pub(super) struct Documents<'a> {
    pub(super) out: Option<&'a OutDir>,
    pub(super) bucket: Option<&'a Bucket>,
}

impl Documents<'_> {
    /// Writes `name` from `fill`, atomically; a failure is a warning (the journal has it all).
    pub(super) async fn write_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
        stderr: &mut dyn Write,
    ) {
        let result = match (self.bucket, self.out) {
            (None, Some(out)) => out.write_atomic_with(name, fill).map_err(|e| e.to_string()),
            (None, None) => Err("no place to write it".to_string()),
            (Some(bucket), _) => {
                let mut bytes = Vec::new();
                match fill(&mut bytes) {
                    Ok(()) => bucket.put(name, bytes).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if let Err(e) = result {
            let _ = writeln!(stderr, "warning: cannot write {name}: {e}");
        }
    }
}
