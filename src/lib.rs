//! kling-batch: run large batches of Kling video generations through the RunAPI HTTP API.
//!
//! Data flows one way: a manifest (YAML or CSV) is parsed and checked (`manifest`), expanded into
//! jobs with stable ids and cost estimates (`plan`), each request checked against the Kling
//! contract (`kling`) and priced (`pricing`), then shown (`report`). `app` maps commands to exit
//! codes; `main` only calls it.

pub mod app;
pub mod budget;
pub mod cli;
pub mod client;
pub mod crash;
pub mod credentials;
pub mod download;
pub mod exit;
pub mod hex;
pub mod journal;
pub mod kling;
pub mod logging;
pub mod manifest;
pub mod money;
pub mod outdir;
pub mod plan;
pub mod pricing;
pub mod report;
pub mod rng;
mod run_command;
pub mod runner;
pub mod sim;
mod sim_command;
mod status_command;
pub mod time_format;
