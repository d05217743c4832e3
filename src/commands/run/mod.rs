//! `kling-batch run`: the command (`command`), the settings a resume keeps (`resume`), price
//! quotes (`quotes`), and what comes before and after the run (`finish`).

mod command;
mod finish;
mod quotes;
mod resume;

pub(crate) use command::run;
