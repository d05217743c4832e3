//! The local run store: the journal file in the output folder, with its one writer thread. The
//! folder's lock (`output::folder::OutDir`) keeps a second run out.

use super::{Fence, RunStore};
use crate::journal::{self, JournalError, JournalWriter, Record, Recovery, Replayed, WriteError};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::path::Path;

#[derive(Debug)]
pub struct LocalRunStore {
    writer: JournalWriter,
}

/// What opening a store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot open {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl OpenError {
    pub fn hint(&self) -> &'static str {
        match self {
            OpenError::Journal(e) => e.hint(),
            OpenError::Io { .. } => "check the output folder's permissions and free space",
        }
    }
}

impl LocalRunStore {
    /// Replays the journal at `path` (a torn last line is cut away) and opens it for appending.
    pub fn open(path: &Path) -> Result<(LocalRunStore, Replayed, Recovery), OpenError> {
        let (replayed, recovery) = journal::read_replayed(path)?;
        let writer = JournalWriter::open(path, recovery.valid_len).map_err(|source| OpenError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok((LocalRunStore { writer }, replayed, recovery))
    }
}

impl RunStore for LocalRunStore {
    // A run of its own: the folder's lock is its claim on every job, so there is no fence.
    fn append(&self, record: &Record, _fence: Option<Fence>) {
        self.writer.append(record);
    }

    fn append_durable<'a>(
        &'a self,
        record: &'a Record,
        _fence: Option<Fence>,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        self.writer.append_durable(record).boxed()
    }

    fn close(&self) -> BoxFuture<'_, Result<(), WriteError>> {
        let result = self.writer.close();
        async move { result }.boxed()
    }
}
