//! The RunAPI HTTP client: requests with the key only ever sent to the API base, answers parsed
//! tolerantly (contract §3–§5), every failure classified before anyone decides to retry, and one
//! pacer that shapes all API requests.

mod api;
pub mod credentials;
mod error;
mod pacer;
pub mod uploads;

pub use api::{CreatedTask, RunApi, TaskStatus, TaskView};
pub use error::{ApiError, Class, parse_retry_after};
pub use pacer::{Pacer, PauseHook, Turn};
