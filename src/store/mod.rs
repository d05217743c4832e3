//! Where a run's state lives. `RunStore` is the seam: append records (an intent made durable
//! before its request goes out), close. Today's implementation is the local journal
//! (`journal.jsonl` in the output folder, replayed on open, locked by the folder); shared state
//! on a database is meant to be a second implementation behind the same trait, not edits through
//! the runner.

mod local;
pub mod postgres;

pub use local::LocalRunStore;

use crate::journal::{Record, WriteError};
use futures::future::BoxFuture;

pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Appends `record`; it becomes durable soon (with the next group).
    fn append(&self, record: &Record);
    /// Appends `record` and resolves once it is durable: what a submit intent waits for.
    fn append_durable<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), WriteError>>;
    /// Makes everything appended durable and stops taking records.
    fn close(&self) -> BoxFuture<'_, Result<(), WriteError>>;
}
