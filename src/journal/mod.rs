//! The run's write-ahead journal: append-only JSON lines, one writer, fsynced in groups. It is the
//! checkpoint: replaying it (a pure fold) says where every job stands and what has been spent.

mod facts;
mod reader;
mod record;
mod replay;
mod writer;

pub use facts::{Failure, JobFacts, Phase, Resume, StoredVideo};
pub use reader::{JournalError, Recovery, Repaired, last_run_started, parse_bytes, read, read_each, repair};
pub use record::{FailureKind, Record, RecordedSettings, VERSION};
pub use replay::{Replayed, read_replayed, replay};
pub use writer::{JournalWriter, WriteError};
