//! Large plans expand on several threads, a slice of prompts each: where to cut so the slices
//! hold about the same number of jobs.

/// Plans smaller than this expand on one thread (a thread costs more than it saves).
pub(super) const PARALLEL_ABOVE: usize = 20_000;

pub(super) const MAX_THREADS: usize = 8;

/// Jobs expanded before they are merged into the plan.
pub(super) const CHUNK_JOBS: usize = 8_192;

/// `threads + 1` prompt indices cutting `weights` into contiguous runs of about equal sums.
pub(super) fn split_points(weights: &[u64], threads: usize) -> Vec<usize> {
    // u128: a weight may be u64::MAX (a prompt whose variables alone overflow, with no jobs).
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let mut bounds = vec![0];
    let mut sum = 0u128;
    for (i, w) in weights.iter().enumerate() {
        sum += u128::from(*w);
        let next = bounds.len() as u128;
        if bounds.len() < threads && sum * threads as u128 >= total * next {
            bounds.push(i + 1);
        }
    }
    bounds.push(weights.len());
    bounds
}
