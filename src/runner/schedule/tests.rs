//! The schedule on a manual clock: simulated tasks with known generation times, polled only when
//! the schedule says, re-planned when it says so. No runtime, no sleeps.

// The schedule's figures are printed for whoever runs these with --nocapture.
#![allow(clippy::print_stdout)]

use super::*;
use crate::util::rng::Rng;
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn shape(seconds: u32) -> Shape {
    let Value::Object(request) = json!({"model": "kling-3.0", "output_resolution": "720p"}) else {
        unreachable!()
    };
    Shape::of(
        &Arc::new(crate::kling::pricing::priced_shape(Endpoint::TextToVideo, &request)),
        seconds,
    )
}

#[derive(Debug)]
struct Figures {
    polls_per_job: f64,
    /// Notice delay ÷ generation time, sorted.
    shares: Vec<f64>,
    /// Per task, in submit order.
    tasks: Vec<Task>,
    makespan: f64,
}

#[derive(Debug, Clone, Copy)]
struct Task {
    generation: f64,
    delay: f64,
    polls: u32,
}

impl Task {
    fn share(&self) -> f64 {
        self.delay / self.generation
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Figures {
    fn share(&self, q: f64) -> f64 {
        self.shares[((self.shares.len() - 1) as f64 * q).round() as usize]
    }
}

/// Runs `jobs` tasks, `concurrency` at a time (a slot is refilled the moment a task is noticed
/// done), generation times from `draw(rng, submit time)`, every poll answered at once.
fn simulate(
    hint: Option<f64>,
    jobs: usize,
    concurrency: usize,
    pressure: Pressure,
    draw: &mut dyn FnMut(&mut Rng, f64) -> f64,
) -> Figures {
    simulate_at_rate(hint, jobs, concurrency, f64::INFINITY, pressure, draw)
}

/// As `simulate`, with creates and polls served first come first served at `rate` per second:
/// a look planned for t happens when its turn comes, maybe later.
fn simulate_at_rate(
    hint: Option<f64>,
    jobs: usize,
    concurrency: usize,
    rate: f64,
    pressure: Pressure,
    draw: &mut dyn FnMut(&mut Rng, f64) -> f64,
) -> Figures {
    let mut free_at: f64 = 0.0;
    // With a jitter seed, each request is answered up to 5 ms later than its turn (the same
    // tasks, timing that varies as a real network's does).
    let mut jitter = JITTER.with(|j| j.get()).map(Rng::new);
    let mut turn = |t: f64| {
        let served = t.max(free_at);
        free_at = served + 1.0 / rate;
        served + jitter.as_mut().map_or(0.0, |r| r.between(0.0, 0.005))
    };
    let mut schedule = PollSchedule::new(hint);
    let id = schedule.shape_id(&shape(5));
    let mut rng = Rng::new(SEED.with(|s| s.get()));
    let mut truth = vec![0.0; jobs];
    let mut submitted = vec![0.0; jobs];
    let mut seen = vec![0.0; jobs];
    let mut polls = vec![0u32; jobs];
    let mut planned = vec![f64::NAN; jobs];
    let mut delay = vec![0.0; jobs];
    let mut running: Vec<usize> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let key = |t: f64| (t * 1e9).ceil() as u64;
    let mut next_job = 0;
    let mut now: f64 = 0.0;
    let mut end: f64 = 0.0;
    let plan = |schedule: &mut PollSchedule,
                queue: &mut BinaryHeap<Reverse<(u64, usize)>>,
                j: usize,
                now: f64,
                submitted: &[f64],
                seen: &[f64],
                planned: &mut [f64]| {
        let at = submitted[j] + schedule.next_poll(id, j, seen[j], now - submitted[j], pressure);
        planned[j] = at;
        queue.push(Reverse((key(at), j)));
    };
    loop {
        while running.len() < concurrency && next_job < jobs {
            let j = next_job;
            next_job += 1;
            now = turn(now);
            submitted[j] = now;
            truth[j] = draw(&mut rng, now);
            schedule.started(id, j, now);
            running.push(j);
            plan(&mut schedule, &mut queue, j, now, &submitted, &seen, &mut planned);
        }
        let Some(Reverse((at, j))) = queue.pop() else { break };
        if at != key(planned[j]) {
            continue; // re-planned since
        }
        now = turn(at as f64 / 1e9);
        polls[j] += 1;
        let elapsed = now - submitted[j];
        if elapsed >= truth[j] {
            delay[j] = elapsed - truth[j];
            end = end.max(now);
            planned[j] = f64::NAN;
            running.retain(|r| *r != j);
            let changed = schedule.finished(id, j, submitted[j], seen[j], elapsed);
            if changed.contains(&id) {
                for &r in &running {
                    plan(&mut schedule, &mut queue, r, now, &submitted, &seen, &mut planned);
                }
            }
        } else {
            seen[j] = elapsed;
            schedule.unfinished(id, j, elapsed);
            plan(&mut schedule, &mut queue, j, now, &submitted, &seen, &mut planned);
        }
    }
    let mut shares: Vec<f64> = (0..jobs).map(|j| delay[j] / truth[j]).collect();
    shares.sort_by(f64::total_cmp);
    Figures {
        polls_per_job: f64::from(polls.iter().sum::<u32>()) / jobs as f64,
        shares,
        tasks: (0..jobs)
            .map(|j| Task {
                generation: truth[j],
                delay: delay[j],
                polls: polls[j],
            })
            .collect(),
        makespan: end,
    }
}

fn uniform(low: f64, high: f64) -> impl FnMut(&mut Rng, f64) -> f64 {
    move |rng, _| rng.between(low, high)
}

fn log_normal(median: f64, sigma: f64) -> impl FnMut(&mut Rng, f64) -> f64 {
    move |rng, _| {
        // Box–Muller.
        let (u, v) = (rng.unit().max(1e-12), rng.unit());
        median * (sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()).exp()
    }
}

fn bimodal(fast: f64, slow: f64, slow_share: f64) -> impl FnMut(&mut Rng, f64) -> f64 {
    move |rng, _| {
        let centre = if rng.chance(slow_share) { slow } else { fast };
        centre * rng.between(0.9, 1.1)
    }
}

#[test]
#[ignore = "prints figures for tuning: cargo nextest run schedule::tests::figures --run-ignored only --no-capture"]
fn figures() {
    type Draw = Box<dyn FnMut(&mut Rng, f64) -> f64>;
    let cases: Vec<(&str, usize, usize, Draw)> = vec![
        ("uniform 0.2-0.5, 400 x 100", 400, 100, Box::new(uniform(0.2, 0.5))),
        ("uniform 8-20, 60 x 60", 60, 60, Box::new(uniform(8.0, 20.0))),
        ("uniform 8-20, 600 x 60", 600, 60, Box::new(uniform(8.0, 20.0))),
        (
            "realistic 0.6 +-10%, 2000 x 100",
            2000,
            100,
            Box::new(uniform(0.54, 0.66)),
        ),
        (
            "log-normal 5 s s0.25, 200 x 20",
            200,
            20,
            Box::new(log_normal(5.0, 0.25)),
        ),
        ("log-normal 5 s, 200 x 20", 200, 20, Box::new(log_normal(5.0, 0.4))),
        ("bimodal 2/12, 300 x 20", 300, 20, Box::new(bimodal(2.0, 12.0, 0.5))),
        (
            "drift 2->10, 400 x 20",
            400,
            20,
            Box::new(|rng: &mut Rng, t: f64| (2.0 + 8.0 * (t / 100.0).min(1.0)) * rng.between(0.9, 1.1)),
        ),
    ];
    for (name, jobs, concurrency, mut draw) in cases {
        for pressure in [Pressure::Spare, Pressure::Normal] {
            let f = simulate(None, jobs, concurrency, pressure, &mut *draw);
            println!(
                "{name:32} {pressure:?}: polls/job {:.2}  share p50 {:.3} p90 {:.3}  makespan {:.1}",
                f.polls_per_job,
                f.share(0.5),
                f.share(0.9),
                f.makespan
            );
        }
    }
}

fn drift(from: f64, to: f64, over: f64) -> impl FnMut(&mut Rng, f64) -> f64 {
    move |rng, t| (from + (to - from) * (t / over).min(1.0)) * rng.between(0.9, 1.1)
}

#[test]
fn a_bimodal_shape_is_learned_without_a_poll_storm() {
    // Over eight runs (one run's figures move with its draws: a single seed's median is noise).
    let (mut fast_shares, mut slow_shares) = (Vec::new(), Vec::new());
    for seed in 1..=8 {
        SEED.with(|s| s.set(seed));
        let f = simulate(None, 300, 20, Pressure::Spare, &mut bimodal(2.0, 12.0, 0.5));
        // After the first waves: fast tasks noticed near their time, slow ones in a few looks.
        let later = &f.tasks[100..];
        let fast: Vec<f64> = later.iter().filter(|t| t.generation < 5.0).map(Task::share).collect();
        let slow: Vec<&Task> = later.iter().filter(|t| t.generation > 5.0).collect();
        assert!(fast.len() > 50 && slow.len() > 50);
        fast_shares.push(median(fast));
        slow_shares.push(median(slow.iter().map(|t| t.share()).collect()));
        let slow_polls = slow.iter().map(|t| f64::from(t.polls)).sum::<f64>() / slow.len() as f64;
        let mut counts: Vec<u32> = slow.iter().map(|t| t.polls).collect();
        counts.sort_unstable();
        let p90 = counts[counts.len() * 9 / 10];
        assert!(
            slow_polls <= 4.5 && p90 <= 6,
            "seed {seed}: slow tasks polled {slow_polls:.2} times on average, p90 {p90}"
        );
        assert!(
            f.polls_per_job <= 3.2,
            "seed {seed}: {:.2} polls per job",
            f.polls_per_job
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&fast_shares) <= 0.13,
        "fast tasks noticed late: median shares {fast_shares:.3?}"
    );
    assert!(
        mean(&slow_shares) <= 0.12,
        "slow tasks noticed late: median shares {slow_shares:.3?}"
    );
}

#[test]
fn a_drift_is_followed() {
    // Generation time grows five-fold over the run.
    let f = simulate(None, 400, 20, Pressure::Spare, &mut drift(2.0, 10.0, 100.0));
    let late = &f.tasks[200..];
    assert!(late.iter().all(|t| t.generation > 4.0), "the drift is under way");
    let share = median(late.iter().map(Task::share).collect());
    let polls = late.iter().map(|t| f64::from(t.polls)).sum::<f64>() / late.len() as f64;
    assert!(share <= 0.10, "late tasks noticed late: median share {share:.3}");
    assert!(polls <= 3.5, "late tasks polled {polls:.2} times");
    assert!(f.share(0.9) <= 0.3, "p90 share {:.3}", f.share(0.9));
}

#[test]
fn the_last_tasks_of_a_cold_wave_are_looked_at_soon_after_the_latest_completion() {
    // 60 tasks at once, 8-20 s, nothing known. The wave ends with its last tasks: those that
    // outlived every completion seen are most likely to finish soon after it, not spread evenly
    // over the next factor of three (which once left the last ones unseen for 10-30 s).
    for seed in 1..=8 {
        SEED.with(|s| s.set(seed));
        let f = simulate_at_rate(None, 60, 60, 50.0, Pressure::Spare, &mut uniform(8.0, 20.0));
        let longest = f.tasks.iter().map(|t| t.generation).fold(0.0, f64::max);
        assert!(
            f.makespan <= longest + 1.2 + 3.0,
            "seed {seed}: the wave ended at {:.2} s, its longest task took {longest:.2} s",
            f.makespan
        );
        assert!(
            f.polls_per_job <= 4.0,
            "seed {seed}: {:.2} polls per job",
            f.polls_per_job
        );
    }
}

#[test]
fn tight_times_need_few_looks() {
    let f = simulate(None, 1000, 50, Pressure::Normal, &mut uniform(0.54, 0.66));
    assert!(f.polls_per_job <= 2.5, "{:.2} polls per job", f.polls_per_job);
    assert!(f.share(0.5) <= 0.05, "median share {:.3}", f.share(0.5));
    assert!(f.share(0.9) <= 0.15, "p90 share {:.3}", f.share(0.9));
}

#[test]
fn exploring_looks_take_turns_and_a_sibling_finishing_early_pulls_the_others_forward() {
    // Told nothing, no task of the shape seen finished: the shape's looks come at ages each a
    // tenth later than the one before, each to the task that asks next.
    let mut schedule = PollSchedule::new(None);
    let id = schedule.shape_id(&shape(5));
    for job in 0..10 {
        schedule.started(id, job, 0.0);
    }
    let first: Vec<f64> = (0..10)
        .map(|job| schedule.next_poll(id, job, 0.0, 0.0, Pressure::Normal))
        .collect();
    assert!((first[0] - EXPLORE_START).abs() < 1e-9, "{first:?}");
    for pair in first.windows(2) {
        assert!((pair[1] / pair[0] - EXPLORE_STEP).abs() < 1e-9, "{first:?}");
    }
    // The first task, seen running at its look, takes the next turn after the tenth.
    schedule.unfinished(id, 0, first[0]);
    let again = schedule.next_poll(id, 0, first[0], first[0], Pressure::Normal);
    assert!(
        (again / first[9] - EXPLORE_STEP).abs() < 1e-9,
        "{again} after {:?}",
        first[9]
    );
    // Asked again before its look (a re-plan), a task keeps its turn.
    assert_eq!(schedule.next_poll(id, 5, 0.0, 0.0, Pressure::Normal), first[5]);
    // A task asking late is looked at now, not at an age gone by.
    schedule.started(id, 10, 0.0);
    let late = schedule.next_poll(id, 10, 0.0, 5.0, Pressure::Normal);
    assert!((5.0..5.1).contains(&late), "{late}");
    // One is seen done at 3 s: the shape's plan changes and the others are re-planned.
    let changed = schedule.finished(id, 0, 0.0, 2.5, 3.0);
    assert_eq!(changed, vec![id]);
    let prior = schedule.next_poll(id, 9, 0.0, 3.0, Pressure::Normal);
    assert!(prior < 10.0, "pulled near the completion: {prior:.2}");
    // A task seen unfinished just now is looked at again soon after.
    schedule.unfinished(id, 8, 3.0);
    let next = schedule.next_poll(id, 8, 3.0, 3.0, Pressure::Normal);
    assert!(next > 3.0 && next <= 6.0, "{next:.2}");
}

#[test]
fn re_plans_while_exploring_keep_each_task_its_turn() {
    // A wave of a thousand tasks over two shapes. When one shape learns the service's speed,
    // the other's tasks are re-planned (their prior moved): each must keep the look it was
    // given, not take a new turn at the end of the line. (Taking new turns pushed a whole wave's
    // looks a minute out: 1,999 tasks in 15 s where 21,644 were done before.)
    let mut schedule = PollSchedule::new(None);
    let (a, b) = (schedule.shape_id(&shape(5)), schedule.shape_id(&shape(10)));
    for job in 0..1000 {
        schedule.started(if job % 2 == 0 { a } else { b }, job, 0.0);
    }
    let given: Vec<f64> = (0..1000)
        .map(|job| schedule.next_poll(if job % 2 == 0 { a } else { b }, job, 0.0, 0.0, Pressure::Normal))
        .collect();
    let mut changed = Vec::new();
    for job in (0..40).step_by(2) {
        changed = schedule.finished(a, job, 0.0, 0.3, 0.4);
        if changed.contains(&b) {
            break;
        }
    }
    assert!(changed.contains(&b), "shape b's prior moved with the scale");
    for job in (1..1000).step_by(2) {
        let again = schedule.next_poll(b, job, 0.0, 0.5, Pressure::Normal);
        assert!(
            again <= given[job].max(0.5) + 1e-9,
            "job {job}: re-planned from {:.2} to {again:.2}",
            given[job]
        );
    }
}

#[test]
fn a_new_shape_starts_from_what_other_shapes_showed() {
    let mut schedule = PollSchedule::new(None);
    let known = schedule.shape_id(&shape(5));
    let unseen = schedule.shape_id(&shape(10));
    for job in 0..20 {
        schedule.started(known, job, 0.0);
    }
    let mut changed = Vec::new();
    for job in 0..20 {
        // The service runs at a hundredth of the guidance: 0.4 s for 40 s.
        changed = schedule.finished(known, job, 0.0, 0.38, 0.42);
        if changed.contains(&unseen) {
            break;
        }
    }
    assert!(
        changed.contains(&unseen),
        "the unseen shape's prior moved with the scale"
    );
    schedule.started(unseen, 100, 1.0);
    for job in 101..110 {
        schedule.started(unseen, job, 1.0);
    }
    // Guidance for 10 s is 65 s: scaled, 0.65 s. No task waits for 65 s.
    let scout = schedule.next_poll(unseen, 100, 0.0, 0.0, Pressure::Normal);
    let other = schedule.next_poll(unseen, 109, 0.0, 0.0, Pressure::Normal);
    assert!(scout < 0.5, "{scout:.2}");
    assert!(other < 1.5, "{other:.2}");
}

#[test]
fn looks_never_repeat_a_moment_or_wait_past_the_longest_step() {
    let mut schedule = PollSchedule::new(Some(1.0));
    let id = schedule.shape_id(&shape(15));
    schedule.started(id, 1, 0.0);
    let mut seen = 0.0;
    for _ in 0..60 {
        let next = schedule.next_poll(id, 1, seen, seen, Pressure::Busy);
        assert!(next > seen, "{next} after {seen}");
        assert!(next - seen <= MAX_STEP + 1e-9, "{next} after {seen}");
        schedule.unfinished(id, 1, next);
        seen = next;
    }
}

#[test]
fn looks_that_queue_for_the_rate_do_not_teach_that_tasks_are_slow() {
    // Fast tasks, and a rate that makes every look wait its turn: tasks are seen done at their
    // first look, later than planned. Learning only "done by then" from them, a schedule would
    // plan later each round (the runner once took 55 s for what needs 9).
    let f = simulate_at_rate(None, 400, 100, 100.0, Pressure::Normal, &mut uniform(0.2, 0.5));
    // Every request waits for the rate here (a notice delay of a second or two is the queue,
    // not the plan): what counts is that looks are not wasted and the run keeps the rate's pace.
    assert!(f.polls_per_job <= 1.5, "{:.2} polls per job", f.polls_per_job);
    // The rate bound: 800 requests at 100 per second.
    assert!(f.makespan <= 8.0 / 0.9, "makespan {:.2} s", f.makespan);
}

#[test]
fn a_service_that_speeds_up_is_noticed() {
    // Tight times halving over the run, looks dear: most tasks are seen done at their one look,
    // which says only "done by then"; the few looked at twice show how early.
    let f = simulate(None, 600, 20, Pressure::Busy, &mut drift(1.0, 0.5, 20.0));
    let late = &f.tasks[450..];
    assert!(late.iter().all(|t| t.generation < 0.6), "the drift is done");
    let share = median(late.iter().map(Task::share).collect());
    assert!(share <= 0.3, "late tasks noticed late: median share {share:.3}");
}

thread_local! {
    static SEED: std::cell::Cell<u64> = const { std::cell::Cell::new(11) };
    static JITTER: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

#[test]
#[ignore = "prints figures over seeds"]
fn seeds() {
    for seed in 1..=8 {
        SEED.with(|s| s.set(seed));
        let f = simulate(None, 300, 20, Pressure::Spare, &mut bimodal(2.0, 12.0, 0.5));
        let later = &f.tasks[100..];
        let fast = median(later.iter().filter(|t| t.generation < 5.0).map(Task::share).collect());
        let slow = median(later.iter().filter(|t| t.generation > 5.0).map(Task::share).collect());
        let g = simulate(None, 600, 60, Pressure::Spare, &mut uniform(8.0, 20.0));
        let h = simulate(None, 200, 20, Pressure::Spare, &mut log_normal(5.0, 0.25));
        println!(
            "seed {seed}: bimodal polls {:.2} fast {fast:.3} slow {slow:.3} | uniform polls {:.2} p50 {:.3} p90 {:.3} | lognormal polls {:.2} p50 {:.3} p90 {:.3}",
            f.polls_per_job,
            g.polls_per_job,
            g.share(0.5),
            g.share(0.9),
            h.polls_per_job,
            h.share(0.5),
            h.share(0.9)
        );
    }
}

#[test]
#[ignore = "prints the issue-29 profiles over seeds"]
fn profiles() {
    type Draw = Box<dyn FnMut(&mut Rng, f64) -> f64>;
    type Profile = (&'static str, usize, usize, fn() -> Draw);
    let cases: Vec<Profile> = vec![
        ("cold wave 8-20, 60x60", 60, 60, || Box::new(uniform(8.0, 20.0))),
        ("log-normal 5 s0.5, 100x20", 100, 20, || Box::new(log_normal(5.0, 0.5))),
        ("bimodal 2/12 30%, 100x20", 100, 20, || {
            Box::new(bimodal(2.0, 12.0, 0.3))
        }),
        ("drift 2->10/40s, 120x20", 120, 20, || Box::new(drift(2.0, 10.0, 40.0))),
    ];
    for (name, jobs, concurrency, make) in cases {
        let mut rows = Vec::new();
        for seed in 1..=16 {
            SEED.with(|s| s.set(seed));
            let f = simulate_at_rate(None, jobs, concurrency, 50.0, Pressure::Spare, &mut *make());
            let last = f.tasks.iter().map(|t| t.delay).fold(0.0, f64::max);
            rows.push((f.polls_per_job, f.share(0.5), f.share(0.9), f.makespan, last));
        }
        let col = |i: usize| -> String {
            let v: Vec<f64> = rows.iter().map(|r| [r.0, r.1, r.2, r.3, r.4][i]).collect();
            let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            format!(
                "{:.3}-{:.3} (mean {:.3})",
                lo,
                hi,
                v.iter().sum::<f64>() / v.len() as f64
            )
        };
        // The same tasks, timing jittered: how much of the spread is the schedule's own.
        let mut chaos = Vec::new();
        for seed in 1..=4 {
            SEED.with(|s| s.set(seed));
            let mut p50 = Vec::new();
            for j in 1..=8 {
                JITTER.with(|s| s.set(Some(j)));
                p50.push(simulate_at_rate(None, jobs, concurrency, 50.0, Pressure::Spare, &mut *make()).share(0.5));
            }
            JITTER.with(|s| s.set(None));
            let (lo, hi) = p50
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            chaos.push(format!("{lo:.3}-{hi:.3}"));
        }
        println!("{name:28} p50 over jittered timing, per sample: {}", chaos.join(", "));
        println!(
            "{name:28} reads {}  p50 {}  p90 {}  makespan {}  worst delay {}",
            col(0),
            col(1),
            col(2),
            col(3),
            col(4)
        );
    }
}

#[test]
#[ignore = "prints what a plan made knowing the true distribution gives"]
fn oracle() {
    type Draw = Box<dyn FnMut(&mut Rng, f64) -> f64>;
    type Case = (&'static str, Distribution, fn() -> Draw);
    // The cold wave's uniform 8–20 s, as the fit would hold it after thousands of completions.
    let wave = {
        let mut rng = Rng::new(7);
        let events: Vec<fit::Event> = (0..4000)
            .map(|_| {
                let t = rng.between(8.0, 20.0);
                fit::Event {
                    low: t * 0.999,
                    high: t,
                    weight: 1.0,
                }
            })
            .collect();
        Distribution::estimate(&events, std::iter::empty()).unwrap()
    };
    let cases: Vec<Case> = vec![
        ("log-normal s0.5", Distribution::log_normal(5.0, 0.5), || {
            Box::new(log_normal(5.0, 0.5))
        }),
        ("log-normal s0.3", Distribution::log_normal(5.0, 0.3), || {
            Box::new(log_normal(5.0, 0.3))
        }),
        ("uniform 8-20", wave, || Box::new(uniform(8.0, 20.0))),
    ];
    for (name, d, make) in cases {
        for budget in [2.5, 2.9, 3.0, 3.5, 4.0] {
            let plan = plan_within(&d, budget);
            let mut rng = Rng::new(3);
            let mut draw = make();
            let (mut reads, mut shares) = (0u32, Vec::new());
            for _ in 0..20000 {
                let t = draw(&mut rng, 0.0);
                let mut seen = 0.0;
                loop {
                    let next = plan.after(seen).unwrap_or(seen * 1.3);
                    reads += 1;
                    if next >= t {
                        shares.push((next - t) / t);
                        break;
                    }
                    seen = next;
                }
            }
            shares.sort_by(f64::total_cmp);
            println!(
                "{name} budget {budget}: reads {:.2} p50 {:.3} p90 {:.3} mean {:.3}",
                f64::from(reads) / 20000.0,
                shares[10000],
                shares[18000],
                shares.iter().sum::<f64>() / 20000.0
            );
        }
    }
}

fn plan_within(d: &Distribution, budget: f64) -> fit::Plan {
    let mut fitted = Fitted {
        events_total: 0,
        distribution: d.clone(),
        plans: vec![None; PRICES],
    };
    fitted.plan_within(budget, PRICE_MIN).clone()
}
