//! `run --out s3://bucket/prefix`: the probe before anything is spent, and the run's documents
//! (results.csv, report.html, summary.json) put as whole objects beside the videos (or written in
//! the output folder). Where the checkpoint of such a run lives is settled in `request`.

use crate::error::{CommandFailure, Exit};
use crate::output::bucket::{Bucket, BucketError, BucketUrl};
use crate::output::folder::OutDir;
use std::io::Write;

pub(crate) fn failure(e: BucketError) -> CommandFailure {
    let exit = match e {
        BucketError::Credentials(_) => Exit::Auth,
        BucketError::NoBucket { .. } | BucketError::PlainHttp { .. } => Exit::Invalid,
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
