//! Where a run's state lives. `RunStore` is the seam: append records (an intent made durable
//! before its request goes out), close. Two implementations: the local journal (`journal.jsonl`
//! in the output folder, replayed on open, locked by the folder) and shared state on PostgreSQL.
//!
//! Every record about a job travels with the `Fence` of the claim it was made under (none for a
//! run of its own, where the folder's lock is the only claim). A shared store refuses a record
//! whose fence is not the job's current one: a worker that paused past its lease cannot write
//! over what the worker that took the job over has done.

mod local;
pub mod postgres;

pub use local::LocalRunStore;

use crate::journal::{Record, WriteError};
use futures::future::BoxFuture;

/// The token of one claim on a job in a shared sweep: it only grows (each claim of the job takes
/// the next one), so a record made under an older claim is told apart from the current one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(pub u64);

pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Appends `record`, made under the claim `fence`; it becomes durable soon (with the next
    /// group). A shared store drops it if the fence is stale.
    fn append(&self, record: &Record, fence: Option<Fence>);
    /// Appends `record` and resolves once it is durable: what a submit intent waits for. A
    /// shared store answers `fenced` if the fence is stale (nothing was written).
    fn append_durable<'a>(&'a self, record: &'a Record, fence: Option<Fence>) -> BoxFuture<'a, Result<(), WriteError>>;
    /// Makes everything appended durable and stops taking records.
    fn close(&self) -> BoxFuture<'_, Result<(), WriteError>>;
}
