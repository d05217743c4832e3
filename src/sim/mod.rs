//! A local stand-in for RunAPI's Kling API: the same routes, request rules, task life, billing and
//! error shapes as the real service (contract §1–§8), plus seeded faults and counters for tests.
//! Started standalone by `kling-batch sim`, in-process by tests and by `run --simulate`.

mod api;
mod clock;
mod config;
mod files;
mod mp4;

mod server;
mod shared;
mod state;
mod stats;
mod task;
mod upload_store;
mod uploads;

pub use clock::SimClock;
pub use config::{DEFAULT_API_KEY, Faults, GenerationTime, RetryAfterForm, SimConfig};
pub use server::{SimHandle, start, start_on as server_start_on};
pub use stats::Stats;
pub use task::TaskTiming;
