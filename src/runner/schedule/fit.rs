//! What one shape's completion times look like, and the poll times that suit them.
//!
//! Times live on one log-spaced grid (5 % apart, 10 ms to 2 h). A fit turns what polls observed —
//! "finished between t1 and t2" for completed tasks, "not finished at t" for tasks in flight — into
//! a distribution with the Kaplan–Meier estimator (in-flight tasks are right-censored, so a wave of
//! slow tasks pulls the estimate later before any of them finishes). Mass the observations cannot
//! place (every remaining task outlived the last completion) follows a log-normal through what is
//! known (see `estimate`): the last tasks of a wave are looked at soon after the latest
//! completion, which ends the wave, and the rest of a wave whose first task just finished are not.
//!
//! The poll times then minimise, over the distribution, the expected notice delay (as a share of
//! the generation time, and in seconds against the median) plus λ for every status read (a
//! dynamic programme over the grid): where completions are dense the polls are close, where they
//! are rare the polls are far apart, and λ says what a read is worth (lower while the rate limiter
//! has room to spare).

/// The first grid edge (seconds since the create was answered).
const T_MIN: f64 = 0.01;
/// Neighbouring edges differ by this factor.
const RATIO: f64 = 1.05;
/// Edges up to 2 hours.
pub(super) const EDGES: usize = 278;
/// Mass the observations cannot place goes up to this factor past the latest one.
const TAIL_SPAN: f64 = 3.0;
/// The log-spread of completion times before any are seen, and what it counts for (in
/// completions) against the spread of those seen.
const TAIL_SIGMA: f64 = 0.3;
const TAIL_SIGMA_WEIGHT: f64 = 4.0;
/// How much a second of notice delay counts against a median generation time, besides its share
/// of the task's own (see `Distribution::plan`).
const ABSOLUTE: f64 = 1.0;
/// Below this survival the task has outlived what the fit knows.
const EMPTY: f64 = 1e-6;

pub(super) fn edge(i: usize) -> f64 {
    T_MIN * RATIO.powi(i as i32)
}

/// The last edge at or below `t` (0 below the grid).
pub(super) fn edge_below(t: f64) -> usize {
    if t <= T_MIN {
        return 0;
    }
    // A time a hair below an edge (rounding on the way through a clock) counts as at it.
    let i = ((t * (1.0 + 1e-9) / T_MIN).ln() / RATIO.ln()).floor() as usize;
    i.min(EDGES - 1)
}

/// One completed task: finished after `low` and by `high` (seconds), counted with `weight`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Event {
    pub low: f64,
    pub high: f64,
    pub weight: f64,
}

/// A distribution over the grid's bins: `mass[k]` between edge k and k+1, summing to 1.
#[derive(Debug, Clone)]
pub(super) struct Distribution {
    mass: Vec<f64>,
}

impl Distribution {
    /// Kaplan–Meier over binned events and right-censored tasks still in flight (`alive`: the
    /// latest time each was seen unfinished). Where in its interval each event fell is estimated
    /// by self-consistency (Turnbull's EM): start spread evenly in log time (an event with no
    /// lower bound over the half below its upper one), then share each event's weight out over
    /// its whole interval in proportion to the current estimate, a few times over.
    pub(super) fn estimate(events: &[Event], alive: impl Iterator<Item = f64>) -> Option<Distribution> {
        let bins = EDGES - 1;
        let mut censored = vec![0.0; bins];
        let mut latest: f64 = 0.0;
        // Each event's share of its interval per bin, evenly in log time.
        let mut shares: Vec<(f64, Vec<(usize, f64)>)> = Vec::with_capacity(events.len());
        let mut first_guess: Vec<(f64, Vec<(usize, f64)>)> = Vec::with_capacity(events.len());
        for e in events {
            if !(e.weight > 0.0 && e.high.is_finite()) {
                continue;
            }
            latest = latest.max(e.high);
            let high = e.high.max(T_MIN * RATIO);
            let guess_low = if e.low > 0.0 { e.low } else { high / 2.0 };
            shares.push((e.weight, log_parts(e.low, high)));
            first_guess.push((e.weight, log_parts(guess_low, high)));
        }
        // A task in flight counts as much as an average completion: recency weights thin out the
        // completions, and unthinned tasks in flight would otherwise outweigh them.
        let counted = shares.len().max(1) as f64;
        let per_alive = shares.iter().map(|(w, _)| w).sum::<f64>() / counted;
        let mut any_alive = false;
        for t in alive {
            if t > 0.0 && t.is_finite() {
                censored[edge_below(t).min(bins - 1)] += per_alive;
                latest = latest.max(t);
                any_alive = true;
            }
        }
        let mut died = vec![0.0; bins];
        for (weight, parts) in &first_guess {
            for (k, share) in parts {
                died[*k] += weight * share;
            }
        }
        if died.iter().sum::<f64>() <= 0.0 {
            return None;
        }
        let (mut mass, mut left) = kaplan_meier(&died, &censored);
        for _ in 0..4 {
            died.iter_mut().for_each(|d| *d = 0.0);
            for (weight, parts) in &shares {
                let total: f64 = parts.iter().map(|(k, share)| mass[*k] * share).sum();
                for (k, share) in parts {
                    died[*k] += if total > 0.0 {
                        weight * mass[*k] * share / total
                    } else {
                        weight * share
                    };
                }
            }
            (mass, left) = kaplan_meier(&died, &censored);
        }
        if left > EMPTY && any_alive {
            // Everyone left outlived the last completion. Past it, the mass follows a log-normal
            // through what is known: its spread from the completions (drawn towards a prior
            // spread while they are few), placed so that the share done by the latest time is
            // the share seen done. The first completion of sixty tasks started together is
            // about the fastest sixtieth: the rest are put well after it, not all just past it;
            // the last few of a wave are put just past the latest, where they most likely are.
            let from = edge_below(latest).min(bins - 1);
            let sigma = spread(&died, TAIL_SIGMA, TAIL_SIGMA_WEIGHT).max(TAIL_SIGMA);
            let z = inverse_normal((1.0 - left).clamp(1e-4, 1.0 - 1e-4));
            let mu = latest.ln() - z * sigma;
            // Up to a factor `TAIL_SPAN` past it: a broad spread of completions (two modes) must
            // not stretch a thin tail over hours, whose looks the budget would then pay for.
            let to = edge_below(latest * TAIL_SPAN).clamp(from + 1, bins);
            let weights: Vec<f64> = (from..to)
                .map(|k| {
                    let z = ((edge(k) * edge(k + 1)).sqrt().ln() - mu) / sigma;
                    (-0.5 * z * z).exp()
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total > 0.0 {
                for (m, w) in mass[from..to].iter_mut().zip(&weights) {
                    *m += left * w / total;
                }
            } else {
                mass[from] += left;
            }
        }
        let total: f64 = mass.iter().sum();
        mass.iter_mut().for_each(|m| *m /= total);
        Some(Distribution { mass })
    }

    /// A log-normal around `median` (seconds) with log-spread `sigma`.
    pub(super) fn log_normal(median: f64, sigma: f64) -> Distribution {
        let bins = EDGES - 1;
        let mu = median.max(T_MIN).ln();
        let mut mass: Vec<f64> = (0..bins)
            .map(|k| {
                let centre = (edge(k) * edge(k + 1)).sqrt().ln();
                let z = (centre - mu) / sigma;
                (-0.5 * z * z).exp()
            })
            .collect();
        let total: f64 = mass.iter().sum();
        mass.iter_mut().for_each(|m| *m /= total);
        Distribution { mass }
    }

    /// The time by which a share `p` of tasks finished.
    pub(super) fn quantile(&self, p: f64) -> f64 {
        let mut sum = 0.0;
        for (k, m) in self.mass.iter().enumerate() {
            sum += m;
            if sum >= p {
                return (edge(k) * edge(k + 1)).sqrt();
            }
        }
        edge(EDGES - 1)
    }

    /// The poll plan for a poll costing `lambda`: from each edge, the edge to poll at next.
    ///
    /// A task noticed `d` late costs `d / t` (its share of its own generation time `t`) plus
    /// `ABSOLUTE × d / median`: a slow task noticed late also holds its slot, or the sweep's end,
    /// for that long, which a share alone would count as little.
    pub(super) fn plan(&self, lambda: f64) -> Plan {
        let bins = self.mass.len();
        let reference = self.quantile(0.5);
        // Prefix sums over the bins below edge p: a[p] = Σ m·w, b[p] = Σ m·c·w, mass[p] = Σ m.
        let mut a = vec![0.0; bins + 1];
        let mut b = vec![0.0; bins + 1];
        let mut below = vec![0.0; bins + 1];
        for k in 0..bins {
            let centre = (edge(k) * edge(k + 1)).sqrt();
            let weight = 1.0 / centre + ABSOLUTE / reference;
            a[k + 1] = a[k] + self.mass[k] * weight;
            b[k + 1] = b[k] + self.mass[k] * centre * weight;
            below[k + 1] = below[k] + self.mass[k];
        }
        let survival: Vec<f64> = below.iter().map(|b| (1.0 - b).max(0.0)).collect();
        let mut cost = vec![0.0; bins + 1];
        let mut next = vec![bins as u16; bins + 1];
        for p in (0..bins).rev() {
            if survival[p] <= EMPTY {
                continue;
            }
            let mut best = f64::INFINITY;
            let mut best_q = bins;
            for q in p + 1..=bins {
                // Relative delay of the tasks finishing between p and q, noticed at q.
                let delay = edge(q) * (a[q] - a[p]) - (b[q] - b[p]);
                let c = delay + cost[q];
                if c < best {
                    best = c;
                    best_q = q;
                }
                if survival[q] <= EMPTY {
                    break;
                }
            }
            cost[p] = lambda * survival[p] + best;
            next[p] = best_q as u16;
        }
        // Expected looks from each edge on: one now if still running, then the rest.
        let mut looks = vec![0.0; bins + 1];
        for p in (0..bins).rev() {
            let q = usize::from(next[p]);
            looks[p] = survival[p] + if q > p && q <= bins { looks[q] } else { 0.0 };
        }
        Plan {
            next,
            survival,
            looks: looks[0],
        }
    }
}

/// The log-spread of the mass in `died` (by bin), drawn towards `prior` as if it were `weight`
/// completions more.
fn spread(died: &[f64], prior: f64, weight: f64) -> f64 {
    let centre = |k: usize| (edge(k) * edge(k + 1)).sqrt().ln();
    let n: f64 = died.iter().sum();
    if n <= 0.0 {
        return prior;
    }
    let mean = died.iter().enumerate().map(|(k, d)| d * centre(k)).sum::<f64>() / n;
    let var = died
        .iter()
        .enumerate()
        .map(|(k, d)| d * (centre(k) - mean).powi(2))
        .sum::<f64>()
        / n;
    ((n * var + weight * prior * prior) / (n + weight)).sqrt().max(0.05)
}

/// The standard normal quantile of `p` (in 0..1), by bisection on the distribution function.
fn inverse_normal(p: f64) -> f64 {
    let (mut low, mut high) = (-8.0, 8.0);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if normal_cdf(mid) < p {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

/// Φ(x), from erfc by Numerical Recipes' Chebyshev fit (error below 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = (x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc }
}

/// The bins an interval covers, each with its share of the interval in log time.
fn log_parts(low: f64, high: f64) -> Vec<(usize, f64)> {
    let bins = EDGES - 1;
    let low = low.clamp(T_MIN, high / RATIO);
    let span = (high / low).ln();
    (edge_below(low)..=edge_below(high))
        .filter_map(|k| {
            let (from, to) = (edge(k).max(low), edge(k + 1).min(high));
            (to > from && k < bins).then(|| (k, (to / from).ln() / span))
        })
        .collect()
}

/// Kaplan–Meier on the grid: the mass per bin, and the survival left after the last bin. At risk
/// in bin k: what died in k or later, what was censored later, half of what was censored in k.
fn kaplan_meier(died: &[f64], censored: &[f64]) -> (Vec<f64>, f64) {
    let bins = died.len();
    let mut risk = vec![0.0; bins];
    let mut after = 0.0;
    for k in (0..bins).rev() {
        risk[k] = after + died[k] + 0.5 * censored[k];
        after += died[k] + censored[k];
    }
    let mut mass = vec![0.0; bins];
    let mut survival = 1.0;
    for k in 0..bins {
        if risk[k] > 0.0 && died[k] > 0.0 {
            let hazard = (died[k] / risk[k]).min(1.0);
            mass[k] = survival * hazard;
            survival *= 1.0 - hazard;
        }
    }
    (mass, survival)
}

/// From each edge, where to poll next.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    next: Vec<u16>,
    survival: Vec<f64>,
    /// Expected looks at a task from its create to the one that finds it done.
    pub(super) looks: f64,
}

impl Plan {
    /// The next poll (seconds since the create) for a task last seen unfinished at `seen`, or
    /// `None` when it has outlived the distribution.
    pub(super) fn after(&self, seen: f64) -> Option<f64> {
        let p = edge_below(seen);
        if self.survival.get(p).is_none_or(|s| *s <= EMPTY) {
            return None;
        }
        Some(edge(usize::from(self.next[p])))
    }
}

impl Distribution {
    /// The distribution as pseudo-observations worth `weight` tasks in all.
    pub(super) fn as_events(&self, weight: f64) -> Vec<Event> {
        self.mass
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > 0.0)
            .map(|(k, m)| Event {
                low: edge(k),
                high: edge(k + 1),
                weight: m * weight,
            })
            .collect()
    }
}
