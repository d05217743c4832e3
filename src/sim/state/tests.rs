//! The simulator's rules, without a server: replays, settling, generation profiles, balance.

use super::*;
use serde_json::json;

fn body(prompt: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({"model": "kling-3.0", "prompt": prompt, "duration_seconds": 5}) else {
        unreachable!()
    };
    m
}

#[test]
fn idempotency_replays_and_conflicts() {
    let mut s = State::new(&SimConfig::default());
    let first = s
        .create(Endpoint::TextToVideo, &body("a"), Some("k"), None, Duration::ZERO)
        .unwrap();
    let again = s
        .create(Endpoint::TextToVideo, &body("a"), Some("k"), None, Duration::ZERO)
        .unwrap();
    assert!(again.replayed);
    assert_eq!(first.task.id, again.task.id);
    assert_eq!(
        s.create(Endpoint::TextToVideo, &body("b"), Some("k"), None, Duration::ZERO)
            .unwrap_err(),
        CreateRefusal::Conflict
    );
    assert_eq!(s.counters.tasks_created, 1);
}

#[test]
fn tasks_move_through_their_states_and_settle_once() {
    let mut s = State::new(&SimConfig::default());
    let created = s
        .create(Endpoint::TextToVideo, &body("a"), None, Some("job-1"), Duration::ZERO)
        .unwrap()
        .task;
    assert_eq!(created.status(Duration::ZERO), Status::Pending);
    assert_eq!(created.status(created.started), Status::Processing);
    assert_eq!(created.status(created.ready), Status::Completed);
    assert!((30.0..=120.0).contains(&created.ready.as_secs_f64()));
    assert_eq!(s.reserved(), Money::from_cents(70));
    s.settle_due(created.ready);
    s.settle_due(created.ready + Duration::from_secs(10));
    assert_eq!(s.reserved(), Money::ZERO);
    assert_eq!(s.counters.billed, Money::from_cents(70));
    assert_eq!(s.balance(), Money::from_cents(100_000 - 70));
    assert_eq!(s.counters.billed_per_client_request_id["job-1"], 1);
}

/// The generation-time profiles a poll schedule is measured against: their shapes hold.
#[test]
fn generation_profiles_have_their_shapes() {
    let times = |generation: GenerationTime, at: Duration| -> Vec<f64> {
        let mut s = State::new(&SimConfig {
            generation,
            balance_cents: u64::MAX / 2_000_000,
            ..SimConfig::default()
        });
        (0..400)
            .map(|i| {
                let t = s
                    .create(Endpoint::TextToVideo, &body(&format!("p{i}")), None, None, at)
                    .unwrap()
                    .task;
                (t.ready - t.created).as_secs_f64()
            })
            .collect()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let log_normal = times(
        GenerationTime::LogNormal {
            median_seconds: 5.0,
            sigma: 0.5,
        },
        Duration::ZERO,
    );
    assert!((4.0..6.0).contains(&median(log_normal.clone())));
    assert!(log_normal.iter().any(|t| *t > 10.0), "a tail of slow tasks");
    let bimodal = times(
        GenerationTime::Bimodal {
            fast_seconds: 2.0,
            slow_seconds: 12.0,
            slow_share: 0.3,
        },
        Duration::ZERO,
    );
    let slow = bimodal.iter().filter(|t| **t > 7.0).count();
    assert!((80..160).contains(&slow), "about 30 % slow: {slow}");
    assert!(
        bimodal
            .iter()
            .all(|t| (1.8..2.2).contains(t) || (10.8..13.2).contains(t))
    );
    let drift = GenerationTime::Drift {
        from_seconds: 2.0,
        to_seconds: 10.0,
        over_seconds: 100.0,
    };
    assert!(median(times(drift, Duration::ZERO)) < 2.3);
    assert!(median(times(drift, Duration::from_secs(50))) > 5.5);
    assert!(median(times(drift, Duration::from_secs(500))) > 9.0);
}

#[test]
fn failed_tasks_are_refunded_and_balance_gates_creates() {
    let mut config = SimConfig::default();
    config.faults.task_failure_rate = 1.0;
    config.balance_cents = 100;
    let mut s = State::new(&config);
    let t = s
        .create(Endpoint::TextToVideo, &body("a"), None, None, Duration::ZERO)
        .unwrap()
        .task;
    // 70 of 100 cents reserved: a second 70-cent job does not fit.
    let refused = s
        .create(Endpoint::TextToVideo, &body("b"), None, None, Duration::ZERO)
        .unwrap_err();
    assert!(matches!(refused, CreateRefusal::InsufficientCredits { .. }));
    s.settle_due(t.ready);
    assert_eq!(s.balance(), Money::from_cents(100));
    assert_eq!(s.counters.billed, Money::ZERO);
    assert_eq!(t.view(t.ready, None)["status"], "failed");
    assert!(s.create(Endpoint::TextToVideo, &body("b"), None, None, t.ready).is_ok());
}
