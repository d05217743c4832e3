//! `kling-batch run`, one pipeline (`command`) over its parts: flags ▶ the run as asked
//! (`request`), the run's settings settled once (`settings`), the service (`service`), where the
//! run's state lives — the output folder's journal, or a shared sweep (`origin`, `sweep`) — whose
//! folder it is (`folder`), the cap and balance checks (`spend`), price quotes (`quotes`), the
//! printed resume command (`resume`), the executor's context (`context`), object storage
//! (`bucket`), and what comes before and after the run (`finish`).

mod bucket;
mod command;
mod context;
mod finish;
mod folder;
mod origin;
mod quotes;
mod request;
pub(crate) mod resume;
mod service;
mod settings;
mod spend;
mod sweep;

pub(crate) use bucket::failure as bucket_failure;
pub(crate) use command::run;
