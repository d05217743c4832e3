//! `kling-batch run`: the command (`command`), flags ▶ settings (`settings`), whose output folder
//! it is (`folder`), the cap and balance checks (`spend`), price quotes (`quotes`), the printed
//! resume command (`resume`), what both run paths build on (`context`), a worker of a shared sweep
//! (`sweep`), and what comes before and after the run (`finish`).

mod bucket;
mod command;
mod context;
mod finish;
mod folder;
mod quotes;
pub(crate) mod resume;
mod settings;
mod spend;
mod sweep;

pub(crate) use bucket::failure as bucket_failure;
pub(crate) use command::run;
