//! The runner: job states with their data (`job`), the dispatcher that owns all run state
//! (`dispatcher`, its transitions in `transitions.rs`), the spend ledger (`budget`), when to poll
//! (`schedule`), the executor that runs operations concurrently and feeds their results back
//! (`executor`), and Ctrl-C escalation (`signals`). The dispatcher changes a job's durable facts
//! only through the records it emits, folded by the journal's own fold.

pub mod budget;
mod dispatcher;
mod executor;
mod job;
mod schedule;
pub mod shared;
pub mod signals;
pub mod steps;

pub use dispatcher::{Dispatcher, Settings, SharedSettings, idempotency_key};
pub use executor::{Context, execute};
pub use job::{Event, JobPhase, JobRun, JobState, Op, StopReason};
pub use schedule::{PollSchedule, Shape};
