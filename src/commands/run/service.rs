//! The service a run talks to: the built-in simulator (started for this run, on loopback) or
//! RunAPI with the key from the environment; and the key's check before anything is written.

use super::context::fail;
use super::settings::Service;
use crate::client::credentials::{self, Credentials, ProcessEnv};
use crate::client::{Class, RunApi};
use crate::error::{CommandFailure, Exit};
use crate::sim::{self, SimConfig, SimHandle};
use std::io::Write;
use std::time::Duration;

pub(super) struct Connection {
    pub(super) credentials: Credentials,
    /// The address the run talks to (the simulator's, on loopback).
    pub(super) base_url: String,
    simulator: Option<SimHandle>,
    time_scale: f64,
}

impl Connection {
    /// Starts the simulator, or finds the key: a missing key ends the run here (exit 2).
    pub(super) async fn open(service: &Service) -> Result<Connection, CommandFailure> {
        if !service.simulate {
            let credentials = credentials::resolve(&ProcessEnv, service.api_base.as_deref()).map_err(|e| {
                let exit = if matches!(e, credentials::CredentialsError::NoKey { .. }) {
                    Exit::Auth
                } else {
                    Exit::Invalid
                };
                fail(&e, e.hint(), exit)
            })?;
            return Ok(Connection {
                base_url: credentials.base_url.clone(),
                credentials,
                simulator: None,
                time_scale: service.time_scale,
            });
        }
        let config = SimConfig {
            adopt_unknown_tasks: true,
            time_scale: service.time_scale,
            // A fresh seed per run: a resumed run's simulator must not hand out the task ids the
            // previous one did.
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            // A trial run is never stopped by the simulator's pretend balance ($10,000,000).
            balance_cents: 1_000_000_000,
            ..SimConfig::default()
        };
        let handle = sim::start(config)
            .await
            .map_err(|e| fail(format!("cannot start the simulator: {e}"), "", Exit::Failure))?;
        Ok(Connection {
            credentials: Credentials {
                api_key: credentials::ApiKey::new(handle.api_key()),
                base_url: handle.base_url().to_string(),
            },
            base_url: handle.base_url().to_string(),
            simulator: Some(handle),
            time_scale: service.time_scale,
        })
    }

    /// Says that the run is simulated: once every check has passed, just before the run begins.
    pub(super) fn announce(&self, stderr: &mut dyn Write) {
        if let Some(handle) = &self.simulator {
            let _ = writeln!(
                stderr,
                "simulating RunAPI at {} (no key, no cost; time ×{})",
                handle.base_url(),
                self.time_scale
            );
        }
    }

    /// Stops the simulator, saying what it billed: a new user sees the pretend account agree with
    /// the run's own spend (and the tests read it, the simulator being inside this process).
    pub(super) async fn close(self, stderr: &mut dyn Write) {
        if let Some(handle) = self.simulator {
            let stats = handle.stats();
            let twice = stats
                .counters
                .billed_per_client_request_id
                .values()
                .filter(|n| **n > 1)
                .count();
            let _ = writeln!(
                stderr,
                "the simulator billed ${:.2} for {} completed task{}; {}",
                stats.billed_usd,
                stats.counters.tasks_completed,
                if stats.counters.tasks_completed == 1 { "" } else { "s" },
                if twice == 0 {
                    "no job twice".to_string()
                } else {
                    format!("{twice} job(s) more than once")
                }
            );
            handle.stop().await;
        }
    }
}

/// Checks the key before anything is written or created (a refused key costs nothing). A busy
/// service (5xx, 429, a reset) gets two more tries; one that cannot answer lets the run go on.
pub(super) async fn check_key(api: &RunApi) -> Result<(), CommandFailure> {
    let mut check = api.check_key().await;
    for wait_ms in [200, 800] {
        match &check {
            Err(e) if matches!(e.class(), Class::Transient | Class::RateLimited) => {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(wait_ms))).await;
                check = api.check_key().await;
            }
            _ => break,
        }
    }
    match check {
        Ok(_) => Ok(()),
        Err(e) if e.class() == Class::Auth => Err(CommandFailure::new(
            Exit::Auth,
            format!("the API key was refused: {}", e.message()),
        )
        .hint("check RUNAPI_API_KEY (or run `runapi login`); nothing was written or sent")),
        Err(e) => {
            tracing::warn!(error = %e, "the key could not be checked; going on");
            Ok(())
        }
    }
}
