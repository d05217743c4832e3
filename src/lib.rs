//! kling-batch: run large batches of Kling video generations through the RunAPI HTTP API.
//!
//! Data flows one way: a manifest (YAML or CSV) is parsed and checked (`manifest`), expanded into
//! jobs with stable ids and cost estimates (`plan`), each request checked against the Kling
//! contract (`kling`) and priced (`pricing`), then shown (`report`). `app` maps commands to exit
//! codes; `main` only calls it.

pub mod app;
pub mod cli;
pub mod client;
mod commands;
pub mod error;
pub mod journal;
pub mod kling;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod report;
pub mod runner;
pub mod sim;
pub mod store;
pub mod util;
