//! The I/O side of a shared sweep, for the executor: claims and heartbeats on the control
//! connection, and the sweep's pace — its rate divided among the workers that are alive, and a
//! 429 met by any of them pausing all.

use crate::client::Pacer;
use crate::store::postgres::{Claimed, Conn, PgRunStore, Sweep, SweepTotals};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct SharedSweep {
    pub sweep: Sweep,
    pub worker: String,
    pub lease: Duration,
    /// The sweep's request rate, shared by its workers.
    pub rate: f64,
    pub conn: tokio::sync::Mutex<Conn>,
    pub store: Arc<PgRunStore>,
    pub pacer: Arc<Pacer>,
}

impl SharedSweep {
    pub async fn claim(&self, n: usize) -> Result<Claimed, String> {
        let mut conn = self.conn.lock().await;
        let result = async {
            let client = conn.get().await?;
            self.sweep.claim(client, &self.worker, n, self.lease).await
        }
        .await;
        match result {
            Ok(claimed) => {
                self.store.learn(&claimed.records);
                Ok(claimed)
            }
            Err(e) => {
                conn.reset();
                Err(e.to_string())
            }
        }
    }

    /// Renews the leases; keeps this worker's pace at its share of the sweep's rate and honours
    /// a pause another worker recorded.
    pub async fn heartbeat(
        &self,
        in_flight: usize,
        done: &[usize],
    ) -> Result<(Vec<(usize, crate::store::Fence)>, SweepTotals), String> {
        let mut conn = self.conn.lock().await;
        let result = async {
            let client = conn.get().await?;
            let held = self
                .sweep
                .heartbeat(client, &self.worker, self.lease, in_flight, done)
                .await?;
            let totals = self.sweep.totals(client).await?;
            let alive = self.sweep.live_workers(client, self.lease).await?;
            Ok::<_, crate::store::postgres::StateError>((held, totals, alive))
        }
        .await;
        match result {
            Ok((mut held, mut totals, alive)) => {
                // Jobs whose records the store refused as stale are not held, whatever the lease.
                let lost = self.store.take_lost();
                held.retain(|(i, _)| !lost.contains(i));
                totals.workers = alive.max(1);
                self.pacer.set_base(self.rate / totals.workers as f64);
                if let Some(wait) = totals.paused_for {
                    self.pacer.pause_for(wait);
                }
                Ok((held, totals))
            }
            Err(e) => {
                conn.reset();
                Err(e.to_string())
            }
        }
    }

    /// Records a pause every worker keeps (a 429's `Retry-After`); best effort.
    pub async fn pause(&self, wait: Duration) {
        let mut conn = self.conn.lock().await;
        let result = async {
            let client = conn.get().await?;
            self.sweep.pause(client, wait).await
        }
        .await;
        if let Err(e) = result {
            conn.reset();
            tracing::debug!(error = %e, "could not record the pause for the other workers");
        }
    }
}
