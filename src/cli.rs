//! Command-line flags, as clap parses them. Raw values only: checking and meaning live in the
//! commands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kling-batch",
    version,
    args_override_self = true,
    about = "Run large batches of Kling video generations through RunAPI: resumable, rate-limited, spend-capped.",
    after_help = "Exit codes: 0 done, 1 internal failure, 2 auth, 3 credits, 4 invalid input, 5 timed out, \
                  7 some jobs failed, 8 spend cap reached, 64 bad command line, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log detail: -v info, -vv debug, -vvv trace (RUST_LOG, if set, decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,
    /// Log lines as text or as JSON objects.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        global = true,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,
    /// Write the log to this file (appending) instead of stderr.
    #[arg(long, value_name = "PATH", global = true, help_heading = "Global options")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
        /// Refuse local input files larger than this many bytes [default: 2 GiB].
        #[arg(long, value_name = "BYTES")]
        max_input_bytes: Option<u64>,
        /// The run folder whose reviews choose the parents of steps with `only:` (as a run there
        /// would); without it, such steps run for no parent yet.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Check a manifest against the Kling request contract and report every problem. Spends nothing.
    Validate {
        /// The manifest: a .yaml/.yml sweep or a .csv job list.
        manifest: PathBuf,
        /// Refuse local input files larger than this many bytes [default: 2 GiB].
        #[arg(long, value_name = "BYTES")]
        max_input_bytes: Option<u64>,
    },
    /// Run every job of a manifest: submit, poll, download, write results. Rerun to resume.
    #[command(after_help = "Examples:
  kling-batch run manifests/example.yaml --out runs/demo --simulate      try it on the built-in simulator
  kling-batch run sweep.yaml --out runs/lake --max-spend 25              for real, at most $25
  kling-batch run sweep.yaml --out runs/lake --retry-failed=upstream     rerun: retry upstream failures")]
    Run(Box<RunArgs>),
    /// Show where a run folder stands, from its journal alone (no network).
    Status {
        /// The run's output folder (its --out).
        dir: PathBuf,
        /// Print the status as JSON for scripts.
        #[arg(long)]
        json: bool,
        /// The sweep's state database [default: $KLING_BATCH_STATE]; the folder's journal if none.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
        /// The sweep's name in the state database [default: the folder's absolute path].
        #[arg(long = "run", value_name = "NAME")]
        run_name: Option<String>,
    },
    /// Regenerate a run folder's results.csv and report.html (a self-contained video gallery).
    Report {
        /// The run's output folder (its --out).
        dir: PathBuf,
        /// Parameters down the side, comma-separated [default: prompt and its variables].
        #[arg(long, value_name = "NAMES")]
        rows: Option<String>,
        /// Parameters across the top, comma-separated [default: the matrix's parameters].
        #[arg(long, value_name = "NAMES")]
        columns: Option<String>,
        /// The sweep's state database [default: $KLING_BATCH_STATE]; the folder's journal if none.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
        /// The sweep's name in the state database [default: the folder's absolute path].
        #[arg(long = "run", value_name = "NAME")]
        run_name: Option<String>,
    },
    /// Review a run in the browser: rate, pick and note clips, vote between clips blind, see which
    /// parameters win. Opens on 127.0.0.1 and prints its address; Ctrl-C stops it.
    Review(ReviewArgs),
    /// Serve kling-batch to an agent over the Model Context Protocol (stdio, or streamable HTTP
    /// with --listen), within spending limits the agent cannot change.
    Mcp(McpArgs),
    /// Run a local RunAPI simulator (no key, no cost) and print its base URL.
    Sim(SimArgs),
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: Option<McpCommand>,
    /// The folder every sweep lives in; no file an agent's manifest names may lie outside it.
    #[arg(long, value_name = "DIR", required = true)]
    pub runs_dir: Option<PathBuf>,
    /// The most one sweep may spend, in US dollars.
    #[arg(long, value_name = "USD", required = true)]
    pub max_spend_per_sweep: Option<f64>,
    /// The most all sweeps this server starts may spend together (kept in the runs folder, so it
    /// holds across restarts).
    #[arg(long, value_name = "USD", required = true)]
    pub max_spend_total: Option<f64>,
    /// A sweep whose cap is above this many US dollars needs the human's own yes: asked in the
    /// client where it can ask (elicitation), else given in a terminal with `kling-batch mcp
    /// confirm` (the sweep waits as awaiting_human until then).
    #[arg(long, value_name = "USD")]
    pub confirm_above: Option<f64>,
    /// Run sweeps on the built-in simulator (no key, no cost).
    #[arg(long)]
    pub simulate: bool,
    /// RunAPI's base URL [default: as `run` finds it].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio. Anywhere but loopback, every
    /// request needs the bearer token it prints (or --token).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// The bearer token for --listen (at least 16 characters) [default: a random one off loopback].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum McpCommand {
    /// Confirm, as the human, a sweep an agent started that waits for you (awaiting_human): shows
    /// its jobs, estimate and cap, asks, and starts it.
    Confirm(ConfirmArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfirmArgs {
    /// The sweep's id (sweep_status and list_sweeps show it).
    pub sweep_id: String,
    /// The MCP server's --runs-dir.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: PathBuf,
    /// Start it without asking (you read what it is elsewhere).
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The run's output folder (its --out).
    pub dir: PathBuf,
    /// Whose reviews these are [default: your login name].
    #[arg(long, value_name = "NAME")]
    pub reviewer: Option<String>,
    /// Where to listen [default: 127.0.0.1, a free port]. Anywhere but loopback, every request
    /// needs the token in the printed address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Import ratings made elsewhere from a CSV file (columns job_id, rating 1-5, and optionally
    /// picked, reviewer, note), then stop. One bad row imports nothing.
    #[arg(long = "import", value_name = "FILE.csv")]
    pub import: Option<PathBuf>,
    /// The sweep's state database [default: $KLING_BATCH_STATE]; the folder's journal if none.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// The sweep's name in the state database [default: the folder's absolute path].
    #[arg(long = "run", value_name = "NAME")]
    pub run_name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The manifest: a .yaml/.yml sweep or a .csv job list.
    pub manifest: PathBuf,
    /// The output folder: videos, results.csv and the journal a rerun resumes from. `{date}`,
    /// `{time}` and `{datetime}` are replaced (UTC), e.g. `runs/{date}` for nightly batches.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Tasks generating at once [default: the manifest's limits, else 4].
    #[arg(help_heading = "Spending and pace", long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// API requests per second, creates and polls together [default: the manifest's, else 2].
    #[arg(help_heading = "Spending and pace", long, value_name = "R")]
    pub rate: Option<f64>,
    /// Stop submitting before billed + reserved would pass this many US dollars; `none` lifts the
    /// cap [default: the manifest's limits, else the estimate the run prints at its start].
    #[arg(help_heading = "Spending and pace", long, value_name = "USD|none", value_parser = parse_spend)]
    pub max_spend: Option<SpendFlag>,
    /// In a shared sweep (--state), let this worker's --max-spend raise (or lift) the sweep's cap
    /// for every worker. Without it a higher cap is refused; a lower one always applies to all.
    #[arg(help_heading = "Spending and pace", long)]
    pub raise_cap: bool,
    /// The RunAPI base URL [default: $RUNAPI_BASE_URL, else the runapi CLI's config, else https://runapi.ai].
    #[arg(help_heading = "Service", long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Run against a built-in simulator instead of RunAPI: no key, no cost.
    #[arg(help_heading = "Service", long)]
    pub simulate: bool,
    /// Attempts per job when tasks end `failed` (failed tasks are not billed) [default: what the
    /// folder's run recorded, else 3]. Raised on a rerun, failed jobs get the difference.
    #[arg(help_heading = "Retries and deadlines", long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Give failed jobs new attempts (new keys, --max-attempts of them); with a PATTERN, only
    /// failures whose reason contains it (e.g. --retry-failed=upstream).
    #[arg(help_heading = "Retries and deadlines", long, value_name = "PATTERN", num_args = 0..=1, default_missing_value = "", require_equals = true)]
    pub retry_failed: Option<String>,
    /// How long one API request may take before its outcome counts as unknown (creates are then
    /// re-sent with the same key).
    #[arg(help_heading = "Service", long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// A task still generating after this long is left for a rerun to pick up.
    #[arg(help_heading = "Retries and deadlines", long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub task_deadline: Duration,
    /// Stop submitting after this long; what is in flight gets --grace to finish, then the run
    /// ends, resumable (for nightly batches).
    #[arg(help_heading = "Retries and deadlines", long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_runtime: Option<Duration>,
    /// After a first Ctrl-C or --max-runtime, how long in-flight work may continue.
    #[arg(help_heading = "Retries and deadlines", long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// With --simulate, how many times faster than real time the built-in simulator generates
    /// [default: 100]. Never needed otherwise: polls learn the service's speed as they go; if
    /// given, it is only a first guess.
    #[arg(help_heading = "Service", long, value_name = "X")]
    pub time_scale: Option<f64>,
    /// No longer needed (kept so older command lines still run): a create of unknown outcome is
    /// re-sent byte for byte under its own key, whatever became of its uploads.
    #[arg(long, hide = true)]
    pub refresh_expired_uploads: bool,
    /// The plan a human approved (what `kling-batch mcp` starts runs with): every file the manifest
    /// names must lie in its folder, and the run refuses to start unless its plan is that plan.
    #[arg(long, hide = true, value_name = "FILE")]
    pub approved_plan: Option<PathBuf>,
    /// Refuse local input files larger than this many bytes [default: 2 GiB].
    #[arg(help_heading = "Retries and deadlines", long, value_name = "BYTES")]
    pub max_input_bytes: Option<u64>,
    /// Skip the spending question a terminal gets for runs above --confirm-above.
    #[arg(help_heading = "Spending and pace", short, long)]
    pub yes: bool,
    /// On a terminal, ask before a run estimated above this many US dollars (never off a terminal).
    #[arg(help_heading = "Spending and pace", long, value_name = "USD", default_value_t = 10.0)]
    pub confirm_above: f64,
    /// The largest video accepted, in bytes.
    #[arg(help_heading = "Downloads", long, value_name = "BYTES", default_value_t = 4 << 30)]
    pub max_video_bytes: u64,
    /// A download slower than this many bytes a second for --stall-time is cut and continued
    /// (curl's --speed-limit).
    #[arg(help_heading = "Downloads", long, value_name = "BYTES", default_value_t = 1024)]
    pub min_download_speed: u64,
    /// Rewrite a damaged journal with every intact record (the run's keys and task ids) and set
    /// the damaged lines aside beside it, then resume.
    #[arg(help_heading = "The output folder", long)]
    pub repair_journal: bool,
    /// Start a new run in a folder that holds an earlier run's videos but no journal: every job is
    /// created, and paid for, again.
    #[arg(help_heading = "The output folder", long)]
    pub start_afresh: bool,
    /// Run this manifest in a folder an earlier run of another manifest wrote: its journal,
    /// videos and spend carry over into this manifest's run. For a shared sweep whose state
    /// database no longer has it (restored to before it was registered): register it again
    /// under the run id its folder's sweep.json records, so every create replays the first.
    #[arg(help_heading = "The output folder", long)]
    pub adopt_folder: bool,
    /// How long a download may stay under --min-download-speed (curl's --speed-time).
    #[arg(help_heading = "Downloads", long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub stall_time: Duration,
    /// Keep the sweep's state in PostgreSQL (`postgres://user@host/db`) instead of the output
    /// folder's journal, so workers on several machines work one sweep [default:
    /// $KLING_BATCH_STATE].
    #[arg(help_heading = "Several machines", long, value_name = "URL")]
    pub state: Option<String>,
    /// The sweep's name in the state database [default: the output folder's absolute path].
    #[arg(help_heading = "Several machines", long = "run", value_name = "NAME")]
    pub run_name: Option<String>,
    /// How long a worker's claim on a job lasts without a heartbeat; a dead worker's jobs are
    /// taken over after it.
    #[arg(help_heading = "Several machines", long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,
    /// How long a worker keeps trying a state database that went away before it stops
    /// (resumable).
    #[arg(help_heading = "Several machines", long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub state_outage: Duration,
}

/// `--max-spend`: an amount of US dollars, or `none`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpendFlag {
    Usd(f64),
    Unlimited,
}

/// `25`, `12.50`, or `none`.
pub(crate) fn parse_spend(text: &str) -> Result<SpendFlag, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(SpendFlag::Unlimited);
    }
    text.parse::<f64>()
        .map(SpendFlag::Usd)
        .map_err(|_| format!("`{text}` is not an amount of US dollars (such as 25) or `none`"))
}

/// `90s`, `30m`, `2h`, `500ms`, or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 30m or 2h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}`: use ms, s, m or h")),
    };
    if !(0.0..1e9).contains(&seconds) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Simulated seconds per real second (generation takes 30–120 simulated seconds); 0 stops the
    /// clock [default: 1, or the profile's].
    #[arg(long, value_name = "X")]
    pub time_scale: Option<f64>,
    /// Seed for the fault draws [default: 1, or the profile's].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// A YAML profile of settings and faults (see README); flags override it.
    #[arg(long, value_name = "PROFILE")]
    pub faults: Option<PathBuf>,
    /// The one API key to accept [default: $RUNAPI_API_KEY, else sk-sim-local].
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Starting balance in cents [default: 100000, or the profile's].
    #[arg(long, value_name = "CENTS")]
    pub balance_cents: Option<u64>,
    /// Size of each served video in bytes [default: 65536, or the profile's].
    #[arg(long, value_name = "BYTES")]
    pub video_bytes: Option<u64>,
    /// Serve videos from a second port (a different origin from the API).
    #[arg(long)]
    pub separate_file_origin: bool,
    /// Port for the video origin (with --separate-file-origin); 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub file_port: u16,
}
