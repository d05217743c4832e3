//! kling-batch: run large batches of Kling video generations through the RunAPI HTTP API.
//!
//! Data flows one way. A manifest (YAML or CSV, from a file or text) is read and checked
//! (`manifest`), expanded into jobs with stable ids and estimates (`plan`), each request checked
//! against the Kling contract and priced (`kling`). A run (`commands::run`) settles its flags,
//! opens the run store (`store`: the journal, replayed into each job's facts by one fold in
//! `journal`) and the video store (`output`), then the `runner`'s dispatcher — the one owner of
//! run state — admits jobs under the spend ledger and the pacer, and its executor runs every
//! create, poll and download (`client`, `output::download`) concurrently. Records go to the run
//! store; `report` turns the state into results.csv, summary.json, the gallery and the end
//! summary. `sim` is the RunAPI stand-in tests and `--simulate` run against. `app` maps a
//! command line to a command and its failure to text and an exit code (`error`).

pub mod app;
pub(crate) mod cli;
pub mod client;
mod commands;
pub mod error;
pub mod inputs;
pub mod journal;
pub(crate) mod kling;
pub mod manifest;
pub mod mcp;
pub mod output;
pub mod plan;
pub(crate) mod report;
pub mod review;
pub mod runner;
pub mod sim;
pub mod store;
pub mod util;
