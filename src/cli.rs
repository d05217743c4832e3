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
}
