//! `kling-batch run`: the command (`command`), flags ▶ settings (`settings`), the printed resume
//! command (`resume`), price quotes (`quotes`), and what comes before and after the run
//! (`finish`).

mod command;
mod finish;
mod folder;
mod quotes;
mod resume;
mod settings;

pub(crate) use command::run;
