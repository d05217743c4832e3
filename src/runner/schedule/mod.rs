//! When to look at a task again, learned online from what polls observe.
//!
//! Per shape (model, length, resolution, sound) the schedule keeps what its polls saw: completed
//! tasks ("finished between the last poll that saw it running and the one that saw it done") and
//! tasks in flight ("still running at t"). `fit` turns that into a distribution and the poll times
//! that minimise notice delay (as a share of generation time) plus a price per status read; polls
//! go at those times, so they crowd where completions are dense, not around a mean.
//!
//! A shape nobody has seen finish is explored: its tasks take turns on one short geometric
//! schedule of looks (each look goes to the task that asks next, so a look lands on a different
//! task each time and a fast task is found whichever it is), from a quarter of a second — or
//! from the public guidance scaled by what other shapes showed, or by `--time-scale` if it was
//! given. The dispatcher re-plans every task in flight of the shapes `finished` names, so a
//! sibling finishing early pulls the others' polls forward.
//! Times are seconds since the create was answered; the schedule holds no clock.

mod fit;
#[cfg(test)]
mod tests;

use crate::kling::Endpoint;
use crate::kling::pricing::PricedShape;
use fit::{Distribution, Event, Plan};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What generation time depends on: model, resolution (with the model's default filled in),
/// sound, and length. Shared with the plan, so a job's shape costs one pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    priced: Arc<PricedShape>,
    seconds: u32,
}

impl Shape {
    pub fn of(priced: &Arc<PricedShape>, seconds: u32) -> Shape {
        Shape {
            priced: priced.clone(),
            seconds,
        }
    }

    /// The public guidance: 30 s for a short 720p clip up to 120 s for a long 4k one.
    fn guidance(&self) -> f64 {
        let length = (f64::from(self.seconds.clamp(3, 15)) - 3.0) / 12.0;
        let resolution = match self.priced.output_resolution.as_deref() {
            Some("4k") => 30.0,
            Some("1080p") => 15.0,
            _ => 0.0,
        };
        let slow = matches!(self.priced.endpoint, Endpoint::MotionControl | Endpoint::AiAvatar);
        (30.0 + 60.0 * length + resolution + if slow { 30.0 } else { 0.0 }).min(120.0)
    }
}

/// How many status reads a task may cost: more while the rate limiter has room, fewer when
/// requests queue for it. A tight distribution needs fewer than its budget and gets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    Spare,
    Normal,
    Busy,
}

impl Pressure {
    /// Expected status reads per task, the one that finds it done included.
    fn budget(self) -> f64 {
        match self {
            Pressure::Spare => 2.7,
            Pressure::Normal => 2.5,
            Pressure::Busy => 1.5,
        }
    }
}

/// How completion times move over the run: a weighted least-squares line through log time
/// against creation time. Older completions are moved to where the line says a task created now
/// would finish, so a service that slows down (or speeds up) is followed, not averaged.
#[derive(Debug, Clone, Copy)]
struct Drift {
    /// d ln(time) / d(creation time), per second.
    slope: f64,
    /// The creation time the events are moved to.
    reference: f64,
}

impl Drift {
    /// Time multiplies by at most this much either way.
    const MAX_FACTOR: f64 = 2.0;
    /// A slope counts when it is this many standard errors from flat.
    const CLEAR: f64 = 4.0;
    /// A completion tells the trend when its bracket is at most this wide (high ÷ low).
    const BRACKET: f64 = 1.5;

    fn of(all: &VecDeque<Completion>, all_weights: &[f64], cohort: f64) -> Drift {
        let none = Drift {
            slope: 0.0,
            reference: 0.0,
        };
        // Only completions bracketed closely from both sides: "done at its first look" is as
        // late as the look was (looks come later when requests queue), and the middle of a wide
        // bracket (an exploring look long before) says little about when the task finished.
        let (events, weights): (Vec<Completion>, Vec<f64>) = all
            .iter()
            .zip(all_weights)
            .filter(|(c, _)| c.created < cohort && c.low > 0.0 && c.high <= c.low * Self::BRACKET)
            .map(|(c, w)| (*c, *w))
            .unzip();
        if events.len() < 8 {
            return none;
        }
        let point = |c: &Completion| (c.created, ((c.low + c.high) / 2.0).max(1e-6).ln());
        let (mut sw, mut sw2, mut sx, mut sy) = (0.0, 0.0, 0.0, 0.0);
        for (c, w) in events.iter().zip(&weights) {
            let (x, y) = point(c);
            sw += w;
            sw2 += w * w;
            sx += w * x;
            sy += w * y;
        }
        let (mx, my) = (sx / sw, sy / sw);
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (c, w) in events.iter().zip(&weights) {
            let (x, y) = point(c);
            sxx += w * (x - mx).powi(2);
            sxy += w * (x - mx) * (y - my);
        }
        if sxx <= 0.0 {
            return none;
        }
        let slope = sxy / sxx;
        // Only a clear trend counts: noise (or two clusters of times) must not tilt the fit.
        let rss: f64 = events
            .iter()
            .zip(&weights)
            .map(|(c, w)| {
                let (x, y) = point(c);
                w * (y - my - slope * (x - mx)).powi(2)
            })
            .sum();
        let n = sw * sw / sw2;
        if n <= 3.0 {
            return none;
        }
        let error = ((rss / sw) / (sxx / sw) / (n - 2.0)).sqrt();
        if slope.abs() < Self::CLEAR * error {
            return none;
        }
        // Tasks in flight were created, on average, about half a generation time ago.
        let latest = events.iter().map(|c| c.created + c.high).fold(f64::MIN, f64::max);
        Drift {
            slope,
            reference: latest - my.exp() / 2.0,
        }
    }

    fn factor(&self, created: f64) -> f64 {
        (self.slope * (self.reference - created))
            .exp()
            .clamp(1.0 / Self::MAX_FACTOR, Self::MAX_FACTOR)
    }
}

/// A task that outlived what the fit knows: a little later each time.
fn tail(seen: f64) -> f64 {
    (seen * TAIL_GROWTH).max(seen + 0.01)
}

/// A shape known to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShapeId(u32);

impl ShapeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A status read never costs less than this share of a generation time in notice delay.
const LOOK_PRICE_FLOOR: f64 = 0.02;
/// Exploring from nothing: the shape's first look at this age (seconds since a create), each next
/// one at an age this much greater (a look every tenth of the time so far: about 37 looks from
/// 0.25 s to 8 s, shared by all the shape's tasks).
const EXPLORE_START: f64 = 0.25;
const EXPLORE_STEP: f64 = 1.1;
/// Exploring a new shape when other shapes have shown the service's speed: from this share of
/// its scaled guidance.
const EXPLORE_KNOWN_START: f64 = 0.4;
const EXPLORE_KNOWN_STEP: f64 = 1.08;
/// A task that outlived everything the fit knows is looked at this much later each time.
const TAIL_GROWTH: f64 = 1.3;
/// Never longer than this between two looks at one task (seconds).
const MAX_STEP: f64 = 60.0;
/// Completions remembered per shape, and how fast old ones stop counting (a drift is followed).
const WINDOW: usize = 128;
const HALF_LIFE: f64 = 16.0;
/// What a prior counts for against observations, in tasks.
const PRIOR_WEIGHT: f64 = 1.0;

#[derive(Debug)]
struct Fitted {
    events_total: u64,
    distribution: Distribution,
    /// The plan at each price on the ladder, made when first asked for.
    plans: Vec<Option<Plan>>,
}

/// Prices of a look (a share of a generation time in notice delay) a plan is made at: from
/// `PRICE_MIN`, each this much dearer, up to 2 (a look worth twice a generation: hardly any).
const PRICE_MIN: f64 = 0.001;
const PRICE_STEP: f64 = 1.15;
const PRICES: usize = 56;

fn price(level: usize) -> f64 {
    PRICE_MIN * PRICE_STEP.powi(level as i32)
}

/// The cheapest rung at or above `at`.
fn price_level(at: f64) -> usize {
    ((at / PRICE_MIN).ln() / PRICE_STEP.ln())
        .ceil()
        .clamp(0.0, (PRICES - 1) as f64) as usize
}

impl Fitted {
    /// The plan with the lowest notice delay whose expected looks per task stay within `budget`,
    /// a look never priced below `floor` (a tight distribution needs fewer and gets them).
    fn plan_within(&mut self, budget: f64, floor: f64) -> &Plan {
        let (mut low, mut high) = (price_level(floor), PRICES - 1);
        // Looks fall as the price rises: find the lowest rung within the budget.
        while low < high {
            let mid = (low + high) / 2;
            if self.plan_at(mid).looks <= budget {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        self.plan_at(low)
    }

    fn plan_at(&mut self, level: usize) -> &Plan {
        let distribution = &self.distribution;
        self.plans[level].get_or_insert_with(|| distribution.plan(price(level)))
    }
}

/// One completed task: created at `created` (seconds on the run's clock), finished between `low`
/// and `high` seconds after that.
#[derive(Debug, Clone, Copy)]
struct Completion {
    created: f64,
    low: f64,
    high: f64,
}

/// A task in flight: created at `created` on the run's clock, last seen unfinished `seen`
/// seconds after that (0 before its first look); while its shape is explored, the age its
/// exploring look was given.
#[derive(Debug, Clone, Copy)]
struct Alive {
    created: f64,
    seen: f64,
    slot: Option<f64>,
}

#[derive(Debug)]
struct ShapeModel {
    guidance: f64,
    /// Completed tasks, newest last.
    events: VecDeque<Completion>,
    events_total: u64,
    /// Tasks in flight: the latest time each was seen unfinished (0 before its first poll).
    alive: HashMap<usize, Alive>,
    /// While nothing of the shape has finished: the age at which the next task to ask is looked at.
    frontier: Option<f64>,
    fitted: Option<Fitted>,
    /// Median completion time from the latest fit with completions.
    median: Option<f64>,
}

#[derive(Debug)]
pub struct PollSchedule {
    /// Seconds per second of guidance, when `--time-scale` was given.
    hint: Option<f64>,
    ids: HashMap<Shape, ShapeId>,
    shapes: Vec<ShapeModel>,
    /// Observed ÷ guidance over the shapes that have finished tasks.
    scale: Option<f64>,
}

impl PollSchedule {
    /// `time_scale`: how many times faster than real time the service is said to be (a hint).
    pub fn new(time_scale: Option<f64>) -> PollSchedule {
        PollSchedule {
            hint: time_scale.filter(|x| x.is_finite() && *x > 0.0).map(|x| 1.0 / x),
            ids: HashMap::new(),
            shapes: Vec::new(),
            scale: None,
        }
    }

    pub fn shape_id(&mut self, shape: &Shape) -> ShapeId {
        if let Some(id) = self.ids.get(shape) {
            return *id;
        }
        let id = ShapeId(self.shapes.len() as u32);
        self.shapes.push(ShapeModel {
            guidance: shape.guidance(),
            events: VecDeque::new(),
            events_total: 0,
            alive: HashMap::new(),
            frontier: None,
            fitted: None,
            median: None,
        });
        self.ids.insert(shape.clone(), id);
        id
    }

    /// Real seconds per second of guidance: learned, else the hint, else 1.
    pub fn speed(&self) -> f64 {
        self.scale.or(self.hint).unwrap_or(1.0)
    }

    /// A task of shape `id` was created at `created` on the run's clock (`job` names it until it
    /// leaves).
    pub fn started(&mut self, id: ShapeId, job: usize, created: f64) {
        let m = &mut self.shapes[id.0 as usize];
        m.alive.insert(
            job,
            Alive {
                created,
                seen: 0.0,
                slot: None,
            },
        );
    }

    /// A poll at `at` seconds found the task still generating.
    pub fn unfinished(&mut self, id: ShapeId, job: usize, at: f64) {
        if let Some(alive) = self.shapes[id.0 as usize].alive.get_mut(&job) {
            alive.seen = alive.seen.max(at);
        }
    }

    /// The task left without a completion to learn from (failed, timed out, abandoned).
    pub fn left(&mut self, id: ShapeId, job: usize) {
        self.shapes[id.0 as usize].alive.remove(&job);
    }

    /// The task, created at `created` on the run's clock (seconds), finished between `low` and
    /// `high` seconds after that. Returns the shapes whose plans changed: their tasks in flight
    /// should be re-planned.
    pub fn finished(&mut self, id: ShapeId, job: usize, created: f64, low: f64, high: f64) -> Vec<ShapeId> {
        self.left(id, job);
        if !(high.is_finite() && high > 0.0) {
            return Vec::new();
        }
        // Seen done at its first look: somewhere before `high` (low 0), and nothing more is
        // claimed. (Assuming "not long before" once made a plan that looks late, queued for the
        // rate, learn from itself that tasks are slow, round after round.)
        let low = low.clamp(0.0, high);
        let m = &mut self.shapes[id.0 as usize];
        m.events.push_back(Completion { created, low, high });
        if m.events.len() > WINDOW {
            m.events.pop_front();
        }
        m.events_total += 1;
        // Refit after the first completions, then every eighth part more (at most every 8).
        let since = match &m.fitted {
            Some(f) if f.events_total > 0 => m.events_total - f.events_total,
            _ => u64::MAX,
        };
        if since < (m.events_total / 8).clamp(1, 8) {
            return Vec::new();
        }
        self.refit(id);
        let mut changed = vec![id];
        if self.rescale() {
            // Priors of shapes nobody has seen finish move with the service's speed.
            changed.extend(
                (0..self.shapes.len() as u32)
                    .map(ShapeId)
                    .filter(|s| *s != id && self.shapes[s.0 as usize].events_total == 0),
            );
        }
        changed
    }

    /// Recomputes the scale from the shapes' medians; true if it moved by more than a tenth.
    fn rescale(&mut self) -> bool {
        let mut ratios: Vec<f64> = self
            .shapes
            .iter()
            .filter_map(|m| m.median.map(|median| median / m.guidance))
            .collect();
        if ratios.is_empty() {
            return false;
        }
        ratios.sort_by(f64::total_cmp);
        let scale = ratios[ratios.len() / 2];
        let moved = self.scale.is_none_or(|old| (scale / old).ln().abs() > 0.1f64.ln_1p());
        if moved {
            self.scale = Some(scale);
        }
        moved
    }

    fn refit(&mut self, id: ShapeId) {
        let prior = self.prior(id);
        let m = &mut self.shapes[id.0 as usize];
        let n = m.events.len();
        let weights: Vec<f64> = (0..n).map(|i| 0.5f64.powf((n - 1 - i) as f64 / HALF_LIFE)).collect();
        // Only tasks created before the oldest one still in flight tell a trend: among those
        // created later, only the fast ones have finished yet.
        let cohort = m.alive.values().map(|a| a.created).fold(f64::INFINITY, f64::min);
        let drift = Drift::of(&m.events, &weights, cohort);
        let mut events: Vec<Event> = m
            .events
            .iter()
            .zip(&weights)
            .map(|(c, &weight)| {
                let factor = drift.factor(c.created);
                Event {
                    low: c.low * factor,
                    high: c.high * factor,
                    weight,
                }
            })
            .collect();
        if events.is_empty() {
            events = prior.as_events(PRIOR_WEIGHT);
        }
        let distribution = Distribution::estimate(&events, m.alive.values().map(|a| a.seen)).unwrap_or(prior);
        if n > 0 {
            m.median = Some(distribution.quantile(0.5));
        }

        m.fitted = Some(Fitted {
            events_total: m.events_total,
            distribution,
            plans: vec![None; PRICES],
        });
    }

    /// Where a shape nobody has seen finish is expected: its guidance scaled by what other shapes
    /// showed (a tighter guess) or by the hint.
    fn prior(&self, id: ShapeId) -> Distribution {
        let guidance = self.shapes[id.0 as usize].guidance;
        match (self.scale, self.hint) {
            (Some(scale), _) => Distribution::log_normal(guidance * scale, 0.35),
            (None, Some(hint)) => Distribution::log_normal(guidance * hint, 0.6),
            (None, None) => Distribution::log_normal(guidance, 0.6),
        }
    }

    /// When (seconds since its create) to look next at a task last seen unfinished at `seen`
    /// (0: never looked at), now that `now` seconds have passed; never before `now`.
    pub fn next_poll(&mut self, id: ShapeId, job: usize, seen: f64, now: f64, pressure: Pressure) -> f64 {
        let seen = seen.max(0.0);
        let at = self.planned(id, job, seen, now, pressure);
        // Never the same moment again (a look at exactly a planned time must not repeat itself).
        at.min(seen + MAX_STEP).max(seen * 1.01 + 0.001).max(now)
    }

    fn planned(&mut self, id: ShapeId, job: usize, seen: f64, now: f64, pressure: Pressure) -> f64 {
        let events_total = self.shapes[id.0 as usize].events_total;
        if events_total == 0 {
            let guidance = self.shapes[id.0 as usize].guidance;
            let (start, step) = match (self.scale, self.hint) {
                (Some(scale), _) => (EXPLORE_KNOWN_START * guidance * scale, EXPLORE_KNOWN_STEP),
                (None, Some(hint)) => (0.3 * guidance * hint, EXPLORE_STEP),
                (None, None) => (EXPLORE_START, EXPLORE_STEP),
            };
            let m = &mut self.shapes[id.0 as usize];
            let given = m.alive.get(&job).and_then(|a| a.slot).filter(|slot| *slot > seen);
            if let Some(slot) = given {
                // Asked again before its look (a re-plan): the same turn, not a new one.
                return slot;
            }
            let at = m.frontier.unwrap_or(start).max(now).max(seen * step);
            m.frontier = Some(at * step);
            if let Some(alive) = m.alive.get_mut(&job) {
                alive.slot = Some(at);
            }
            return at;
        }
        if self.shapes[id.0 as usize].fitted.is_none() {
            self.refit(id);
        }
        let Some(fitted) = self.shapes[id.0 as usize].fitted.as_mut() else {
            return tail(seen);
        };
        let plan = fitted.plan_within(pressure.budget(), LOOK_PRICE_FLOOR);
        plan.after(seen).unwrap_or_else(|| tail(seen))
    }
}
