//! Counters: what tests and benchmarks assert on. Served at `GET /__sim/stats` and by the handle.

use crate::util::money::Money;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// "METHOD route" → status → count ("dropped" for connections closed without an answer).
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub tasks_created: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub replays: u64,
    pub conflicts: u64,
    pub insufficient_credits: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub dropped_connections: u64,
    pub weird_answers: u64,
    pub polls: u64,
    pub downloads: u64,
    pub truncated_downloads: u64,
    pub file_requests: u64,
    pub file_requests_with_authorization: u64,
    /// Resends answered with `resend_error_status` instead of their replay.
    pub resend_errors: u64,
    /// Status reads answered 404 or without `videos` by the eventual-consistency faults.
    pub not_found_reads: u64,
    pub reads_without_url: u64,
    pub misaligned_ranges: u64,
    pub downloads_without_length: u64,
    pub trickled_downloads: u64,
    /// The files API: prepares, PUTs to upload URLs (and those carrying `Authorization`, which
    /// must never happen), PUTs that delivered the prepared bytes, confirmed files, and creates
    /// refused for naming an expired or unknown upload.
    pub uploads_prepared: u64,
    pub upload_requests: u64,
    pub upload_requests_with_authorization: u64,
    pub uploads_delivered: u64,
    pub uploads_confirmed: u64,
    pub creates_with_unusable_upload: u64,
    /// Continuations (`source_task_id`) refused: the source not completed yet (409), or unknown,
    /// failed or of a model the action does not continue (422).
    pub continuations_not_ready: u64,
    pub continuations_unusable: u64,
    #[serde(skip)]
    pub billed: Money,
    pub creates_per_idempotency_key: BTreeMap<String, u64>,
    /// SHA-256 of the canonical request body → tasks created with it.
    pub creates_per_body: BTreeMap<String, u64>,
    pub creates_per_client_request_id: BTreeMap<String, u64>,
    pub billed_per_body: BTreeMap<String, u64>,
    pub billed_per_client_request_id: BTreeMap<String, u64>,
}

/// A snapshot of the counters with the money and byte totals.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    #[serde(flatten)]
    pub counters: Counters,
    pub download_bytes: u64,
    pub billed_micro_cents: u64,
    pub billed_usd: f64,
    pub balance_cents: f64,
    pub reserved_cents: f64,
    /// Confirmed uploads whose URL has not expired yet.
    pub live_uploads: u64,
}

impl Stats {
    pub fn requests_to(&self, route: &str) -> u64 {
        self.counters
            .requests
            .get(route)
            .map_or(0, |by_status| by_status.values().sum())
    }

    pub fn requests_total(&self) -> u64 {
        self.counters.requests.values().flat_map(|s| s.values()).sum()
    }

    pub fn billed(&self) -> Money {
        Money::from_micro_cents(self.billed_micro_cents)
    }
}
