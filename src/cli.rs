//! Command-line flags, as clap parses them. Raw values only: checking and meaning live in the
//! commands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kling-batch",
    version,
    about = "Run large batches of Kling video generations through RunAPI: resumable, rate-limited, spend-capped.",
    after_help = "Exit codes: 0 done, 1 internal failure, 2 auth, 3 credits, 4 invalid input, 5 timed out, \
                  7 some jobs failed, 8 spend cap reached, 64 bad command line, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Expand a manifest into jobs and show them with an estimated cost. Spends nothing.
    Plan {
        /// The manifest: a .yaml/.yml sweep or a .csv job list.
        manifest: PathBuf,
        /// Print the plan as JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Check a manifest against the Kling request contract and report every problem. Spends nothing.
    Validate {
        /// The manifest: a .yaml/.yml sweep or a .csv job list.
        manifest: PathBuf,
    },
    /// Run a local RunAPI simulator (no key, no cost) and print its base URL.
    Sim(SimArgs),
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Simulated seconds per real second (generation takes 30–120 simulated seconds).
    #[arg(long, value_name = "X")]
    pub time_scale: Option<f64>,
    /// Seed for the fault draws.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// A YAML profile of settings and faults (see README); flags override it.
    #[arg(long, value_name = "PROFILE")]
    pub faults: Option<PathBuf>,
    /// The one API key to accept [default: $RUNAPI_API_KEY, else sk-sim-local].
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Starting balance in cents.
    #[arg(long, value_name = "CENTS")]
    pub balance_cents: Option<u64>,
    /// Size of each served video in bytes.
    #[arg(long, value_name = "BYTES")]
    pub video_bytes: Option<u64>,
    /// Serve videos from a second port (a different origin from the API).
    #[arg(long)]
    pub separate_file_origin: bool,
    /// Port for the video origin (with --separate-file-origin); 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub file_port: u16,
}
