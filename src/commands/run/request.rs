//! `RunArgs` ▶ `Request`: the run as asked, every flag checked and the output's place settled
//! (a templated `--out` expanded, a bucket and its checkpoint told apart). `RunArgs` is consumed
//! here: nothing after this step reads a flag or changes one. What a flag leaves open (the cap,
//! the pace, the simulator) is settled with the folder's recorded settings and the manifest's
//! limits in `settings`.

use super::settings::{Flags, ServiceAsked};
use crate::cli::RunArgs;
use crate::error::{CommandFailure, Exit};
use crate::output::bucket::BucketUrl;
use crate::output::download::Stall;
use crate::output::videos::FetchLimits;
use crate::util::money::Money;
use std::path::PathBuf;
use std::time::Duration;

/// Where the run's output and its checkpoint go.
#[derive(Debug, Clone)]
pub(super) struct Place {
    /// `--out` as given (a template's braces kept): the resume line names the folder it made.
    pub(super) given_out: PathBuf,
    /// The run's folder: `--out` expanded, or `--state DIR` when the output is a bucket.
    pub(super) out: PathBuf,
    /// `--out s3://…`: videos and documents go to object storage.
    pub(super) bucket: Option<BucketUrl>,
    /// A shared sweep's PostgreSQL address (`--state`, else `KLING_BATCH_STATE`).
    pub(super) database: Option<String>,
    /// Whether that address came from the flag (else the environment, which a resume needs too).
    pub(super) database_from_flag: bool,
    /// `--run NAME`: the sweep's name.
    pub(super) run_name: Option<String>,
}

/// How the folder may be taken: the answers to the questions `folder::check` asks.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FolderChoices {
    pub(super) repair_journal: bool,
    pub(super) start_afresh: bool,
    pub(super) adopt_folder: bool,
}

/// When to ask before spending.
#[derive(Debug, Clone, Copy)]
pub(super) struct Consent {
    /// `--yes`: never ask, and go on below the balance.
    pub(super) yes: bool,
    /// Ask on a terminal above this estimate.
    pub(super) above: Money,
}

#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) manifest: PathBuf,
    pub(super) place: Place,
    pub(super) service: ServiceAsked,
    pub(super) flags: Flags,
    pub(super) raise_cap: bool,
    pub(super) retry_failed: Option<String>,
    pub(super) max_input_bytes: Option<u64>,
    pub(super) request_timeout: Duration,
    pub(super) task_deadline: Duration,
    pub(super) max_runtime: Option<Duration>,
    pub(super) grace: Duration,
    pub(super) fetch: FetchLimits,
    pub(super) consent: Consent,
    pub(super) folder: FolderChoices,
    pub(super) lease: Duration,
    pub(super) state_outage: Duration,
    pub(super) refresh_expired_uploads: bool,
    /// `--approved-plan`: the only plan this run may run.
    pub(super) approved: Option<crate::plan::ApprovedPlan>,
}

impl Request {
    /// How long one wait on the state database may last: `--state-outage`, at most the store's
    /// own deadline (a statement silent that long is an outage), at least a second.
    pub(super) fn state_deadline(&self) -> Duration {
        self.state_outage
            .clamp(Duration::from_secs(1), crate::store::postgres::DEFAULT_DEADLINE)
    }

    /// Checks every flag and settles the output's place; consumes the flags.
    pub(super) fn new(args: RunArgs) -> Result<Request, CommandFailure> {
        let flags = Flags::check(&args)?;
        let approved = match &args.approved_plan {
            Some(path) => Some(crate::plan::ApprovedPlan::read(path).map_err(|e| {
                CommandFailure::new(Exit::Usage, e).hint("--approved-plan takes the file kling-batch mcp wrote")
            })?),
            None => None,
        };
        let given_out = args.out.clone();
        let out = crate::output::folder::expand_template(&args.out, std::time::SystemTime::now());
        let place = place(given_out, out, args.state, args.run_name)?;
        Ok(Request {
            manifest: args.manifest,
            place,
            service: ServiceAsked {
                simulate: args.simulate,
                api_base: args.api_base,
                time_scale: args.time_scale,
            },
            flags,
            raise_cap: args.raise_cap,
            retry_failed: args.retry_failed,
            max_input_bytes: args.max_input_bytes,
            request_timeout: args.request_timeout.max(Duration::from_millis(50)),
            task_deadline: args.task_deadline,
            max_runtime: args.max_runtime,
            grace: args.grace,
            fetch: FetchLimits {
                max_bytes: args.max_video_bytes,
                stall: Stall {
                    min_bytes_per_second: args.min_download_speed,
                    window: args.stall_time,
                },
            },
            consent: Consent {
                yes: args.yes,
                above: Money::from_usd_f64(args.confirm_above).unwrap_or(Money::ZERO),
            },
            folder: FolderChoices {
                repair_journal: args.repair_journal,
                start_afresh: args.start_afresh,
                adopt_folder: args.adopt_folder,
            },
            lease: args.lease,
            state_outage: args.state_outage,
            refresh_expired_uploads: args.refresh_expired_uploads,
            approved,
        })
    }
}

/// Splits `--out` and `--state`: with an `s3://` out, the bucket, and `--state` says where the
/// checkpoint lives (a local folder for the journal — then the run's folder — or a database).
fn place(
    given_out: PathBuf,
    out: PathBuf,
    state_flag: Option<String>,
    run_name: Option<String>,
) -> Result<Place, CommandFailure> {
    let database_from_flag = state_flag.is_some();
    let state = state_flag.or_else(|| {
        std::env::var(crate::commands::state::STATE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    let is_db = state.as_deref().is_some_and(crate::store::postgres::is_postgres_url);
    let text = out.to_string_lossy().into_owned();
    let (out, bucket, database) = if !text.starts_with("s3://") {
        if let Some(folder) = state.as_ref().filter(|_| !is_db) {
            return Err(CommandFailure::new(
                Exit::Usage,
                format!("--state {folder} is for an s3:// --out: a local --out keeps its own journal"),
            )
            .hint("leave --state out, or give it a postgres:// address to share the sweep"));
        }
        (out, None, state)
    } else {
        let url = BucketUrl::parse(&text).map_err(|e| {
            CommandFailure::new(Exit::Usage, format!("--out {text}: {e}")).hint("write --out s3://bucket/prefix")
        })?;
        match state {
            None => {
                return Err(CommandFailure::new(
                    Exit::Usage,
                    format!("--out {url} needs a place for the run's checkpoint"),
                )
                .hint("give --state DIR (a local folder for the journal) or --state postgres://… (shared)"));
            }
            Some(db) if is_db => (out, Some(url), Some(db)),
            // The folder is the run's folder (journal, lock, manifest copy); the bucket has the rest.
            Some(folder) => (PathBuf::from(folder), Some(url), None),
        }
    };
    Ok(Place {
        given_out,
        out,
        bucket,
        database: crate::commands::state::state_url(database)?,
        database_from_flag,
        run_name,
    })
}
