//! The dispatcher's transitions, without a runtime or network.

use super::*;
use crate::client::{ApiError, CreatedTask, TaskView};
use crate::journal::replay;

fn plan(jobs: usize) -> Arc<Plan> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    let prompts: Vec<String> = (0..jobs).map(|i| format!("\"prompt number {i}\"")).collect();
    std::fs::write(
        &path,
        format!("defaults: {{ model: kling-3.0 }}\nprompts: [{}]\n", prompts.join(", ")),
    )
    .unwrap();
    let manifest = crate::manifest::load(&path).unwrap();
    Arc::new(crate::plan::expand(&manifest).unwrap())
}

fn settings(concurrency: usize, cap_cents: Option<u64>) -> Settings {
    Settings {
        run_id: "run1".into(),
        concurrency,
        max_attempts: 2,
        cap: cap_cents.map(Money::from_cents),
        task_deadline: Duration::from_secs(1800),
        time_scale: 1.0,
        downloads_at_once: 4,
        seed: 1,
    }
}

fn dispatcher(jobs: usize, concurrency: usize, cap_cents: Option<u64>, history: &Replayed) -> Dispatcher {
    let plan = plan(jobs);
    let reservations = vec![Money::from_cents(70); jobs];
    Dispatcher::new(
        plan,
        reservations,
        history,
        &vec![false; jobs],
        settings(concurrency, cap_cents),
        Instant::now(),
    )
}

fn view(id: &str, status: TaskStatus) -> TaskView {
    TaskView {
        id: id.into(),
        status,
        video_url: Some("https://x/v.mp4".into()),
        cost: Some(Money::from_cents(70)),
        error: Some("boom".into()),
        retry_after: None,
    }
}

fn submits(ops: &[Op]) -> Vec<(usize, String, bool)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Submit { job, key, intent } => Some((*job, key.clone(), intent.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
fn admission_respects_concurrency_and_the_cap() {
    let mut d = dispatcher(5, 2, Some(200), &Replayed::default());
    let now = Instant::now();
    let first = submits(&d.ready_ops(now));
    assert_eq!(first.len(), 2, "two at once");
    assert!(
        first
            .iter()
            .all(|(_, key, intent)| key.starts_with("kb1-run1-") && key.ends_with("-a1") && *intent)
    );
    assert!(d.ready_ops(now).is_empty(), "nothing more until one finishes");
    d.handle(
        Event::Submitted {
            job: 0,
            result: Ok(CreatedTask {
                view: view("t0", TaskStatus::Completed),
                replayed: false,
            }),
        },
        now,
    );
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t0", TaskStatus::Completed)),
        },
        now,
    );
    // $2.00 cap: 70 billed + 70 held + 70 more fits (2.10 > 2.00 does not).
    let ops = d.ready_ops(now);
    assert_eq!(submits(&ops).len(), 0, "a third job would pass the cap");
    assert!(matches!(d.stop_reason(), Some(StopReason::CapReached { .. })));
    assert!(ops.iter().any(|op| matches!(op, Op::Download { job: 0, .. })));
}

#[test]
fn unknown_outcomes_resend_the_same_key_and_failed_tasks_get_a_new_one() {
    let mut d = dispatcher(1, 1, None, &Replayed::default());
    let now = Instant::now();
    let (_, key, _) = submits(&d.ready_ops(now))[0].clone();
    d.handle(
        Event::Submitted {
            job: 0,
            result: Err(ApiError::Transport {
                message: "reset".into(),
            }),
        },
        now,
    );
    let later = now + Duration::from_secs(60);
    let resent = submits(&d.ready_ops(later));
    assert_eq!(resent, vec![(0, key.clone(), false)], "same key, no second intent");
    d.handle(
        Event::Submitted {
            job: 0,
            result: Ok(CreatedTask {
                view: view("t1", TaskStatus::Pending),
                replayed: true,
            }),
        },
        later,
    );
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t1", TaskStatus::Failed)),
        },
        later,
    );
    assert_eq!(
        d.ledger().reserved(),
        Money::ZERO,
        "a failed task releases its reservation"
    );
    let retry = submits(&d.ready_ops(later));
    assert_eq!(retry.len(), 1);
    assert!(
        retry[0].1.ends_with("-a2") && retry[0].2,
        "a new attempt has a new key and intent"
    );
    let records = d.take_records();
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::AttemptFailed { attempt: 1, .. }))
    );
}

#[test]
fn credits_running_out_stops_submitting_but_keeps_the_job() {
    let mut d = dispatcher(3, 3, None, &Replayed::default());
    let now = Instant::now();
    assert_eq!(submits(&d.ready_ops(now)).len(), 3);
    let no_credit = ApiError::Status {
        status: 402,
        code: None,
        message: "no credit".into(),
        retry_after: None,
    };
    d.handle(
        Event::Submitted {
            job: 1,
            result: Err(no_credit),
        },
        now,
    );
    assert!(matches!(d.stop_reason(), Some(StopReason::Credits(_))));
    assert_eq!(d.jobs()[1].phase, JobPhase::Queued);
    assert!(submits(&d.ready_ops(now)).is_empty());
    assert!(!d.abandoned(), "in-flight work carries on");
}

#[test]
fn a_resume_resends_intents_and_reattaches_tasks_from_the_journal() {
    let ids: Vec<String> = plan(3).jobs.iter().map(|j| j.id.to_string()).collect();
    let at = || "t".to_string();
    let history = replay(&[
        Record::RunStarted {
            run_id: "run1".into(),
            at: at(),
            manifest: None,
            cap: None,
            settings: None,
        },
        Record::Submitting {
            job: ids[0].clone(),
            attempt: 1,
            key: "k0".into(),
            reserve: 70_000_000,
            at: at(),
        },
        Record::Submitting {
            job: ids[1].clone(),
            attempt: 1,
            key: "k1".into(),
            reserve: 70_000_000,
            at: at(),
        },
        Record::Submitted {
            job: ids[1].clone(),
            attempt: 1,
            task_id: "t1".into(),
            at: at(),
        },
    ]);
    let mut d = dispatcher(3, 4, Some(10_000), &history);
    assert_eq!(
        d.ledger().reserved(),
        Money::from_cents(140),
        "the journal's reservations hold"
    );
    let ops = d.ready_ops(Instant::now());
    assert!(
        ops.contains(&Op::Submit {
            job: 0,
            key: "k0".into(),
            intent: None
        }),
        "{ops:?}"
    );
    assert!(
        ops.contains(&Op::Poll {
            job: 1,
            task_id: "t1".into()
        }),
        "{ops:?}"
    );
    assert!(
        submits(&ops)
            .iter()
            .any(|(job, key, intent)| *job == 2 && key.ends_with("-a1") && *intent)
    );
}

fn refused(status: u16) -> ApiError {
    ApiError::Status {
        status,
        code: None,
        message: format!("HTTP {status}"),
        retry_after: None,
    }
}

/// Issue 12, case 1, as a table: after a lost answer, no error answer to the resend releases
/// the job, writes `Unsubmitted` or `Failed`, or changes its key; the same answers to a first
/// send do end it the way they always did.
#[test]
fn an_error_answer_to_a_resend_leaves_the_key_unresolved_and_reserved() {
    for status in [400u16, 401, 402, 403, 404, 409, 410, 413, 422] {
        let mut d = dispatcher(1, 1, Some(1_000), &Replayed::default());
        let now = Instant::now();
        let (_, key, _) = submits(&d.ready_ops(now))[0].clone();
        let lost = Err(ApiError::Transport {
            message: "reset".into(),
        });
        d.handle(Event::Submitted { job: 0, result: lost }, now);
        let later = now + Duration::from_secs(60);
        assert_eq!(submits(&d.ready_ops(later)), vec![(0, key.clone(), false)]);
        d.handle(
            Event::Submitted {
                job: 0,
                result: Err(refused(status)),
            },
            later,
        );
        let records = d.take_records();
        assert!(
            !records
                .iter()
                .any(|r| matches!(r, Record::Unsubmitted { .. } | Record::Failed { .. })),
            "HTTP {status}: {records:?}"
        );
        assert_eq!(
            d.ledger().reserved(),
            Money::from_cents(70),
            "HTTP {status}: still reserved"
        );
        assert_eq!(d.jobs()[0].key.as_deref(), Some(key.as_str()), "HTTP {status}");
        assert!(
            matches!(d.jobs()[0].phase, JobPhase::Submitting | JobPhase::Unresolved),
            "HTTP {status}: {:?}",
            d.jobs()[0].phase
        );
        if !matches!(status, 401 | 403) {
            // Re-sent later with the same key, never as a new attempt.
            let much_later = later + Duration::from_secs(3600);
            assert_eq!(
                submits(&d.ready_ops(much_later)),
                vec![(0, key.clone(), false)],
                "HTTP {status}"
            );
        }
    }
    // The same answers to a first send: no task was made, so the job is released or failed.
    for (status, phase) in [
        (402u16, JobPhase::Queued),
        (422, JobPhase::Failed),
        (409, JobPhase::Failed),
    ] {
        let mut d = dispatcher(1, 1, Some(1_000), &Replayed::default());
        let now = Instant::now();
        submits(&d.ready_ops(now));
        d.handle(
            Event::Submitted {
                job: 0,
                result: Err(refused(status)),
            },
            now,
        );
        assert_eq!(d.jobs()[0].phase, phase, "first send, HTTP {status}");
        assert_eq!(d.ledger().reserved(), Money::ZERO, "first send, HTTP {status}");
    }
}

/// A resumed intent is an unknown outcome: the first answer to its resend cannot release it.
#[test]
fn a_resumed_intent_is_an_unknown_outcome() {
    let history = replay(&[Record::Submitting {
        job: plan(1).jobs[0].id.to_string(),
        attempt: 1,
        key: "kb1-run1-k".into(),
        reserve: 70_000_000,
        at: "t".into(),
    }]);
    let mut d = dispatcher(1, 1, None, &history);
    let now = Instant::now();
    assert_eq!(submits(&d.ready_ops(now)), vec![(0, "kb1-run1-k".to_string(), false)]);
    d.handle(
        Event::Submitted {
            job: 0,
            result: Err(refused(422)),
        },
        now,
    );
    assert_ne!(d.jobs()[0].phase, JobPhase::Failed);
    assert_eq!(d.ledger().reserved(), Money::from_cents(70));
}

/// Issue 12, case 3: a reservation never drops below the most the service settled for a shape,
/// and a settlement above its reservation counts at once.
#[test]
fn reservations_rise_to_the_highest_settlement_of_their_shape() {
    let mut d = dispatcher(3, 1, Some(500), &Replayed::default());
    let now = Instant::now();
    submits(&d.ready_ops(now));
    d.handle(
        Event::Submitted {
            job: 0,
            result: Ok(CreatedTask {
                view: view("t1", TaskStatus::Pending),
                replayed: false,
            }),
        },
        now,
    );
    let mut billed = view("t1", TaskStatus::Completed);
    billed.cost = Some(Money::from_cents(210));
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(billed),
        },
        now,
    );
    assert_eq!(d.ledger().spent(), Money::from_cents(210));
    assert_eq!(d.billed_above_reservations(), Money::from_cents(140));
    submits(&d.ready_ops(now));
    assert_eq!(
        d.ledger().reserved(),
        Money::from_cents(210),
        "the next job reserves what the first cost"
    );
}
