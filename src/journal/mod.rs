//! The run's write-ahead journal: append-only JSON lines, one writer, fsynced in groups. It is the
//! checkpoint: replaying it (a pure fold, `JobFacts::apply`, the same fold the dispatcher applies
//! to what it emits) says what every job durably is and what has been spent, and `JobFacts::state`
//! is the one reading of those facts that run, status, the reports and the database share.

mod facts;
mod reader;
mod record;
mod replay;
mod state;
mod writer;

pub use facts::{Failure, JobFacts, Phase, StoredVideo};
pub use reader::{JournalError, LastRun, Recovery, Repaired, last_run_started, parse_bytes, read, read_each, repair};
pub use record::{FailureKind, Record, RecordedSettings, VERSION};
pub use replay::{Replayed, read_replayed, replay};
pub use state::{JobPhase, JobState};
pub use writer::{JournalWriter, WriteError};
