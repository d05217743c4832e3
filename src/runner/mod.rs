//! The runner: job state machine (`job`), the dispatcher that owns all run state
//! (`dispatcher`), when to poll (`schedule`), and the executor that runs operations
//! concurrently and feeds their results back (`executor`).

pub mod budget;
mod dispatcher;
mod executor;
mod job;
mod schedule;
pub mod signals;

pub use dispatcher::{Dispatcher, Settings, idempotency_key};
pub use executor::{Context, execute};
pub use job::{Event, JobPhase, JobRun, Op, StopReason};
pub use schedule::{PollSchedule, Shape};
