//! One file per subcommand. Each takes its parsed flags, calls the library, writes what the user
//! sees on success, and returns its exit code or a `CommandFailure` that `app` renders.

pub(crate) mod load;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod review;
pub(crate) mod run;
pub(crate) mod sim;
pub(crate) mod state;
pub(crate) mod status;
