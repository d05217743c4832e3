//! The dispatcher's transitions, without a runtime or network.

use super::*;
use crate::client::{ApiError, CreatedTask, TaskStatus, TaskView};
use crate::journal::replay;
use crate::runner::job::{Event, JobPhase};

fn plan(jobs: usize) -> Arc<Plan> {
    let prompts: Vec<String> = (0..jobs).map(|i| format!("\"prompt number {i}\"")).collect();
    let text = format!("defaults: {{ model: kling-3.0 }}\nprompts: [{}]\n", prompts.join(", "));
    let manifest = crate::manifest::from_yaml(&text, std::path::Path::new("m.yaml")).unwrap();
    Arc::new(crate::plan::expand(&manifest).unwrap())
}

pub(super) fn settings(concurrency: usize, cap_cents: Option<u64>) -> Settings {
    Settings {
        run_id: "run1".into(),
        concurrency,
        max_attempts: 2,
        retry_failed: None,
        cap: CapRule::Fixed(cap_cents.map(Money::from_cents)),
        task_deadline: Duration::from_secs(1800),
        time_hint: None,
        rate: 10.0,
        downloads_at_once: 4,
        seed: 1,
        shared: None,
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

pub(super) fn view(id: &str, status: TaskStatus) -> TaskView {
    TaskView {
        id: id.into(),
        status,
        video_url: Some("https://x/v.mp4".into()),
        cost: Some(Money::from_cents(70)),
        error: Some("boom".into()),
        retry_after: None,
    }
}

pub(super) fn submits(ops: &[Op]) -> Vec<(usize, String, bool)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Submit { job, key, intent, .. } => Some((*job, key.clone(), intent.is_some())),
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
    assert_eq!(d.jobs()[1].phase(), JobPhase::Queued);
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
            body: None,
            send_until: None,
            at: at(),
        },
        Record::Submitting {
            job: ids[1].clone(),
            attempt: 1,
            key: "k1".into(),
            reserve: 70_000_000,
            body: None,
            send_until: None,
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
            intent: None,
            body: None,
            send_until: None,
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
        assert_eq!(d.jobs()[0].facts.key.as_deref(), Some(key.as_str()), "HTTP {status}");
        assert!(
            matches!(d.jobs()[0].phase(), JobPhase::Submitting | JobPhase::Unresolved),
            "HTTP {status}: {:?}",
            d.jobs()[0].phase()
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
        assert_eq!(d.jobs()[0].phase(), phase, "first send, HTTP {status}");
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
        body: None,
        send_until: None,
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
    assert_ne!(d.jobs()[0].phase(), JobPhase::Failed);
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

mod properties {
    use super::*;
    use crate::output::download::{DownloadError, Downloaded};
    use crate::report::RunStatus;
    use proptest::prelude::*;

    /// What the executor and the service answer, drawn from `choice`.
    fn answer(op: &Op, choice: u8, step: usize) -> Event {
        match op {
            Op::Prepare { job, .. } => Event::Prepared {
                job: *job,
                result: Ok(crate::client::uploads::PreparedBody {
                    body: String::new(),
                    send_until: None,
                }),
            },
            Op::Submit { job, .. } => Event::Submitted {
                job: *job,
                result: match choice % 16 {
                    0 => Err(ApiError::Transport {
                        message: "reset".into(),
                    }),
                    1 => Err(refused(402)),
                    2 => Err(refused(422)),
                    3 => Err(refused(503)),
                    4 => Err(refused(409)),
                    _ => Ok(CreatedTask {
                        view: view(&format!("t{job}-{step}"), TaskStatus::Pending),
                        replayed: choice.is_multiple_of(2),
                    }),
                },
            },
            Op::Poll { job, task_id } => {
                let mut v = view(task_id, TaskStatus::Pending);
                // Never billed above the reservation here, so the cap must hold exactly.
                v.cost = Some(Money::from_cents(40 + u64::from(choice % 31)));
                let result = match choice % 7 {
                    0 => Err(refused(404)),
                    1 => Err(refused(500)),
                    2 => Ok(TaskView {
                        status: TaskStatus::Failed,
                        ..v
                    }),
                    3 => Ok(TaskView {
                        status: TaskStatus::Completed,
                        video_url: None,
                        ..v
                    }),
                    4 => Ok(v),
                    _ => Ok(TaskView {
                        status: TaskStatus::Completed,
                        ..v
                    }),
                };
                Event::Polled { job: *job, result }
            }
            Op::Claim { .. } => Event::Claimed {
                result: Err("not shared".into()),
            },
            Op::Heartbeat { .. } => Event::Heartbeat {
                result: Err("not shared".into()),
            },
            Op::Download { job, .. } => Event::Downloaded {
                job: *job,
                result: match choice % 5 {
                    0 => Err(DownloadError::Transient("cut".into())),
                    1 => Err(DownloadError::Expired(403)),
                    2 => Err(DownloadError::Fatal("too large".into())),
                    _ => Ok(Downloaded {
                        path: format!("videos/{job}.mp4"),
                        bytes: 10,
                        checksum: "blake3:00".into(),
                    }),
                },
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Issue 13: for random event sequences, replaying the records the dispatcher emitted
        /// gives the dispatcher's facts and ledger; the ledger never passes the cap; and what
        /// `status` predicts from the journal is what a resume then does.
        #[test]
        fn replay_equals_the_dispatchers_facts_and_status_predicts_the_resume(
            jobs in 1usize..6,
            concurrency in 1usize..4,
            cap_cents in prop::option::of(70u64..400),
            choices in prop::collection::vec(any::<u8>(), 1..200),
        ) {
            let plan = plan(jobs);
            let reservations = vec![Money::from_cents(70); jobs];
            let mut d = Dispatcher::new(
                Arc::clone(&plan),
                reservations.clone(),
                &Replayed::default(),
                &vec![false; jobs],
                settings(concurrency, cap_cents),
                Instant::now(),
            );
            let mut now = Instant::now();
            let mut journal: Vec<Record> = Vec::new();
            let mut pending: Vec<Op> = Vec::new();
            for (step, choice) in choices.iter().copied().enumerate() {
                if pending.is_empty() || choice % 4 == 0 {
                    now += Duration::from_secs(600);
                    for op in d.ready_ops(now) {
                        if let Op::Submit { intent: Some(intent), .. } = &op {
                            journal.push((**intent).clone());
                        }
                        pending.push(op);
                    }
                } else {
                    let op = pending.remove(usize::from(choice) % pending.len());
                    d.handle(answer(&op, choice / 4, step), now);
                }
                journal.extend(d.take_records());
                let replayed = replay(&journal);
                for (i, spec) in plan.jobs.iter().enumerate() {
                    let facts = replayed.jobs.get(spec.id.as_str()).cloned().unwrap_or_default();
                    prop_assert_eq!(&facts, &d.jobs()[i].facts, "job {} after step {}", i, step);
                }
                prop_assert_eq!(replayed.spent, d.ledger().spent());
                prop_assert_eq!(replayed.reserved, d.ledger().reserved());
                if let Some(cap) = cap_cents {
                    let committed = d.ledger().spent().saturating_add(d.ledger().reserved());
                    prop_assert!(committed <= Money::from_cents(cap), "{} over the cap", committed);
                }
            }
            // Stop here, as a kill would: what `status` says a resume does, it does.
            let replayed = replay(&journal);
            let predicted = RunStatus::of_journal(&replayed, Some(&plan), &|_| true).next;
            let resumed = Dispatcher::new(
                Arc::clone(&plan),
                reservations,
                &replayed,
                &vec![true; jobs],
                settings(concurrency, cap_cents),
                Instant::now(),
            );
            let mut did = crate::report::NextSteps::default();
            for job in resumed.jobs() {
                match &job.state {
                    JobState::Queued | JobState::Waiting | JobState::Elsewhere | JobState::Preparing { .. } => {
                        did.submit += 1
                    }
                    JobState::Submitting { .. } => did.resend += 1,
                    JobState::Generating { .. } | JobState::Parked => did.reattach += 1,
                    JobState::Downloading { .. } => did.download += 1,
                    JobState::Done { .. }
                    | JobState::Failed { .. }
                    | JobState::Skipped { .. }
                    | JobState::Unresolved { .. } => {}
                }
            }
            prop_assert_eq!(predicted, did);
        }
    }
}

/// Polls handed out at `now`, by job.
fn polls(ops: &[Op]) -> Vec<usize> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Poll { job, .. } => Some(*job),
            _ => None,
        })
        .collect()
}

#[test]
fn a_sibling_finishing_early_pulls_polls_forward_but_a_retry_after_still_wins() {
    // Told nothing about the service's speed: the prior is the guidance (tens of seconds).
    let mut d = dispatcher(8, 8, None, &Replayed::default());
    let start = Instant::now();
    assert_eq!(submits(&d.ready_ops(start)).len(), 8);
    for job in 0..8 {
        let created = Ok(CreatedTask {
            view: view(&format!("t{job}"), TaskStatus::Pending),
            replayed: false,
        });
        d.handle(Event::Submitted { job, result: created }, start);
    }
    // Step the clock as the executor would, answering every poll "processing", for two seconds
    // of exploring looks.
    let mut now = start;
    let mut looked: Vec<usize> = Vec::new();
    while now < start + Duration::from_secs(2) {
        now = d.next_wakeup().expect("a look is planned");
        for job in polls(&d.ready_ops(now)) {
            looked.push(job);
            let mut answer = view(&format!("t{job}"), TaskStatus::Processing);
            if job == 1 {
                // This one is told to wait a minute and a half.
                answer.retry_after = Some(Duration::from_secs(90));
            }
            d.handle(
                Event::Polled {
                    job,
                    result: Ok(answer),
                },
                now,
            );
        }
    }
    // The exploring looks take turns: every task is looked at, none waits on the prior.
    assert!((0..8).all(|job| looked.contains(&job)), "{looked:?}");
    // Job 0 is seen done at 2.1 s: everyone else's next look comes forward to about then...
    let done_at = now + Duration::from_millis(100);
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t0", TaskStatus::Completed)),
        },
        done_at,
    );
    let soon = done_at + Duration::from_secs(3);
    let mut pulled = Vec::new();
    while let Some(at) = d.next_wakeup() {
        if at > soon {
            break;
        }
        for job in polls(&d.ready_ops(at)) {
            pulled.push(job);
            d.handle(
                Event::Polled {
                    job,
                    result: Ok(view(&format!("t{job}"), TaskStatus::Processing)),
                },
                at,
            );
        }
        d.ready_ops(at);
    }
    assert!(
        pulled.contains(&7),
        "the sibling's completion pulled job 7 forward: {pulled:?}"
    );
    // ...except the one told to wait: its Retry-After wins over the re-plan.
    assert!(
        !pulled.contains(&1),
        "job 1 was looked at before its Retry-After: {pulled:?}"
    );
    let later = start + Duration::from_secs(120);
    let mut after_wait = Vec::new();
    while let Some(at) = d.next_wakeup() {
        if at > later {
            break;
        }
        for job in polls(&d.ready_ops(at)) {
            if job == 1 {
                after_wait.push(at);
            }
            d.handle(
                Event::Polled {
                    job,
                    result: Ok(view(&format!("t{job}"), TaskStatus::Processing)),
                },
                at,
            );
        }
        d.ready_ops(at);
    }
    let first = after_wait.first().expect("job 1 is looked at again after its wait");
    assert!(
        first.duration_since(start) >= Duration::from_secs(90),
        "{:?}",
        first.duration_since(start)
    );
}

#[test]
fn an_unknown_create_whose_uploads_expired_is_resent_byte_for_byte_under_its_key() {
    // Contract §17: the same key with the same bytes is a replay that answers with the task the
    // first send made, expired uploads or not; another body under the key would be a 409.
    let ids: Vec<String> = plan(2).jobs.iter().map(|j| j.id.to_string()).collect();
    let intent = |job: &str, key: &str, send_until: &str| Record::Submitting {
        job: job.into(),
        attempt: 1,
        key: key.into(),
        reserve: 70_000_000,
        body: Some(format!("{{\"model\":\"kling-3.0\",\"prompt\":\"{key}\"}}")),
        send_until: Some(send_until.into()),
        at: "t".into(),
    };
    let later = crate::util::time_format::rfc3339(std::time::SystemTime::now() + Duration::from_secs(600));
    let history = replay(&[
        intent(&ids[0], "k0", "2020-01-01T00:00:00Z"),
        intent(&ids[1], "k1", &later),
    ]);
    let mut d = dispatcher(2, 2, None, &history);
    let ops = d.ready_ops(Instant::now());
    let mut sent: Vec<(usize, String, Option<String>, bool)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Submit {
                job,
                key,
                body,
                send_until,
                ..
            } => Some((*job, key.clone(), body.clone(), send_until.is_some())),
            _ => None,
        })
        .collect();
    sent.sort();
    assert_eq!(sent.len(), 2, "both are re-sent: {ops:?}");
    for (job, key, body, limited) in &sent {
        assert_eq!(key, &format!("k{job}"), "under its own key");
        assert!(
            body.as_deref().is_some_and(|b| b.contains(&format!("\"k{job}\""))),
            "with its journaled body: {body:?}"
        );
        assert!(!limited, "a resend is never held back for its uploads' life");
    }
    assert!(
        !ops.iter().any(|op| matches!(op, Op::Prepare { .. })),
        "nothing uploaded again"
    );
    assert_eq!(d.ledger().reserved(), Money::from_cents(140), "their money stays held");
}

#[test]
fn a_first_send_held_back_for_expiring_uploads_ends_unsent_and_goes_again_under_a_new_key() {
    let mut d = dispatcher(1, 1, None, &Replayed::default());
    let ops = d.ready_ops(Instant::now());
    let first = submits(&ops);
    assert_eq!(first.len(), 1);
    d.handle(
        Event::Submitted {
            job: 0,
            result: Err(ApiError::NotSent {
                message: "not sent: the uploads expire".into(),
            }),
        },
        Instant::now(),
    );
    let records = d.take_records();
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Unsubmitted { attempt: 1, .. })),
        "the attempt ends unsent: {records:?}"
    );
    assert_eq!(d.ledger().reserved(), Money::ZERO, "its money is released");
    let again = submits(&d.ready_ops(Instant::now()));
    assert_eq!(again.len(), 1, "admitted again at once");
    assert_ne!(again[0].1, first[0].1, "under a new key (a new body may follow)");
}
