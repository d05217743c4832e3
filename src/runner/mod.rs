//! The runner: job states with their data (`job`), the dispatcher that owns all run state
//! (`dispatcher`, with its transitions, its steps and its claims of a shared sweep in
//! `dispatcher/`), the spend ledger (`budget`), when to poll (`schedule`), where a step stands
//! (`standing`), the executor that runs operations concurrently and feeds their results back
//! (`executor`), a shared sweep's claims and heartbeats on the database (`sweep`), and Ctrl-C
//! escalation (`signals`). The dispatcher changes a job's durable facts
//! only through the records it emits, folded by the journal's own fold.

pub mod budget;
mod dispatcher;
mod executor;
mod job;
mod schedule;
pub mod signals;
pub mod standing;
pub mod sweep;

pub use dispatcher::{CapRule, Dispatcher, Settings, SharedSettings, idempotency_key};
pub use executor::{Context, execute};
pub use job::{Event, JobPhase, JobRun, JobState, Op, StopReason};
pub use schedule::{PollSchedule, Shape};
