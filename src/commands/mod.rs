//! One file per subcommand. Each takes its parsed flags, calls the library, writes what the user
//! sees on success, and returns its exit code or a `CommandFailure` that `app` renders.

pub mod load;
pub mod plan;
pub mod report;
pub mod run;
pub mod sim;
pub mod status;
