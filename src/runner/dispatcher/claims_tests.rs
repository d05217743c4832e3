//! The dispatcher as a worker of a shared sweep: it works only what it claims, gives up at once
//! what it lost, and takes back an intent the database refused for the cap.

use super::tests::{settings, submits, view};
use super::*;
use crate::client::{CreatedTask, TaskStatus};
use crate::journal::WriteError;
use crate::runner::job::Event;
use crate::store::Fence;
use crate::store::postgres::{Claimed, SweepTotals};

fn worker(jobs: usize, cap_cents: Option<u64>) -> Dispatcher {
    let text = format!(
        "defaults: {{ model: kling-3.0 }}\nprompts: [{}]\n",
        (0..jobs)
            .map(|i| format!("\"prompt {i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let manifest = crate::manifest::from_yaml(&text, std::path::Path::new("m.yaml")).unwrap();
    let plan = Arc::new(crate::plan::expand(&manifest).unwrap());
    let mut s = settings(4, cap_cents);
    s.shared = Some(SharedSettings {
        lease: Duration::from_secs(3),
        outage: Duration::from_secs(30),
    });
    Dispatcher::new(
        plan,
        vec![Money::from_cents(70); jobs],
        &Replayed::default(),
        &vec![false; jobs],
        s,
        Instant::now(),
    )
}

fn totals(open: u64) -> SweepTotals {
    SweepTotals {
        open,
        workers: 1,
        ..SweepTotals::default()
    }
}

#[test]
fn a_worker_works_what_it_claims_and_lets_go_of_what_it_lost() {
    let mut d = worker(3, None);
    let now = Instant::now();
    let ops = d.ready_ops(now);
    assert!(ops.iter().any(|op| matches!(op, Op::Claim { .. })), "{ops:?}");
    assert!(submits(&ops).is_empty(), "nothing is sent before a claim");
    d.handle(
        Event::Claimed {
            result: Ok(Claimed {
                jobs: vec![0, 2],
                fences: vec![Fence(1), Fence(1)],
                records: Vec::new(),
                open: 3,
            }),
        },
        now,
    );
    let sent: Vec<usize> = submits(&d.ready_ops(now)).iter().map(|s| s.0).collect();
    assert_eq!(sent, [0, 2], "only the claimed jobs");
    assert!(matches!(d.jobs()[1].state, JobState::Elsewhere));
    let held = d.ledger().reserved();
    assert_eq!(held, Money::from_cents(140));
    // The heartbeat says job 2 is no longer this worker's: it is given up, its money with it, and
    // its create's answer, when it comes, changes nothing.
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![(0, Fence(1))], totals(3))),
        },
        now,
    );
    assert!(matches!(d.jobs()[2].state, JobState::Elsewhere));
    assert_eq!(d.ledger().reserved(), Money::from_cents(70));
    d.handle(
        Event::Submitted {
            job: 2,
            result: Ok(CreatedTask {
                view: view("t2", TaskStatus::Pending),
                replayed: false,
            }),
        },
        now,
    );
    assert!(matches!(d.jobs()[2].state, JobState::Elsewhere));
    assert!(
        take_submitted(&mut d)
            .iter()
            .all(|r| r.job() != Some(d.plan.jobs[2].id.as_str()))
    );
    // The sweep is not finished while jobs are open elsewhere; it is when none are.
    assert!(!d.idle());
}

fn take_submitted(d: &mut Dispatcher) -> Vec<Record> {
    d.take_records()
        .into_iter()
        .filter(|r| matches!(r, Record::Submitted { .. }))
        .collect()
}

#[test]
fn an_intent_the_database_refuses_for_the_cap_is_taken_back_and_nothing_is_sent() {
    let mut d = worker(2, Some(1000));
    let now = Instant::now();
    d.ready_ops(now);
    d.handle(
        Event::Claimed {
            result: Ok(Claimed {
                jobs: vec![0, 1],
                fences: vec![Fence(1), Fence(1)],
                records: Vec::new(),
                open: 2,
            }),
        },
        now,
    );
    let sent = submits(&d.ready_ops(now));
    assert_eq!(sent.len(), 2);
    let attempt_before = 0;
    d.handle(
        Event::JournalFailed {
            job: 1,
            error: WriteError {
                message: "no room".into(),
                disk_full: false,
                over_cap: true,
                fenced: false,
            },
        },
        now,
    );
    assert!(matches!(d.jobs()[1].state, JobState::Queued));
    assert_eq!(
        d.jobs()[1].facts.attempt,
        attempt_before,
        "the refused intent never happened"
    );
    assert_eq!(d.ledger().reserved(), Money::from_cents(70), "its money is released");
    assert!(matches!(d.stop_reason(), Some(StopReason::CapReached { .. })));
    assert!(submits(&d.ready_ops(now)).is_empty(), "nothing more is submitted");
}

fn claim(d: &mut Dispatcher, jobs: &[usize], fence: u64, now: Instant) {
    d.handle(
        Event::Claimed {
            result: Ok(Claimed {
                jobs: jobs.to_vec(),
                fences: vec![Fence(fence); jobs.len()],
                records: Vec::new(),
                open: jobs.len() as u64,
            }),
        },
        now,
    );
}

#[test]
fn every_record_and_operation_carries_the_fence_of_its_claim() {
    let mut d = worker(2, None);
    let now = Instant::now();
    d.ready_ops(now);
    claim(&mut d, &[0], 7, now);
    let ops = d.ready_ops(now);
    assert_eq!(submits(&ops).len(), 1);
    assert_eq!(d.fence_of(0), Some(Fence(7)));
    assert_eq!(d.fence_of(1), None, "a job held elsewhere has no fence here");
    d.handle(
        Event::Submitted {
            job: 0,
            result: Ok(CreatedTask {
                view: view("t0", TaskStatus::Pending),
                replayed: false,
            }),
        },
        now,
    );
    let stamped = d.take_stamped();
    assert!(!stamped.is_empty());
    assert!(stamped.iter().all(|(_, f)| *f == Some(Fence(7))), "{stamped:?}");
}

#[test]
fn a_job_claimed_again_elsewhere_is_given_up_and_its_operation_dropped() {
    let mut d = worker(2, None);
    let now = Instant::now();
    d.ready_ops(now);
    claim(&mut d, &[0, 1], 3, now);
    let ops = d.ready_ops(now);
    assert_eq!(submits(&ops).len(), 2);
    // Still listed as this worker's, but under a newer fence: another claim took it (and this
    // worker's lease had run out). Held under an older fence is not held.
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![(0, Fence(3)), (1, Fence(4))], totals(2))),
        },
        now,
    );
    assert!(matches!(d.jobs()[1].state, JobState::Elsewhere));
    assert_eq!(d.take_cancelled(), vec![1], "its create in flight is dropped");
    assert_eq!(d.fence_of(1), None);
    assert!(d.jobs_lost() == 1);
    // A refused record (the store's fence check) gives the job up just the same.
    d.handle(
        Event::JournalFailed {
            job: 0,
            error: WriteError {
                message: "claimed since".into(),
                disk_full: false,
                over_cap: false,
                fenced: true,
            },
        },
        now,
    );
    assert!(matches!(d.jobs()[0].state, JobState::Elsewhere));
    assert_eq!(d.ledger().reserved(), Money::ZERO, "nothing held for jobs given up");
    assert!(d.stop_reason().is_none(), "losing a job does not stop the worker");
}

#[test]
fn a_worker_that_wakes_past_its_lease_starts_nothing_until_a_heartbeat_answers() {
    let mut d = worker(3, None);
    let t0 = Instant::now();
    d.ready_ops(t0);
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![], totals(3))),
        },
        t0,
    );
    claim(&mut d, &[0, 1, 2], 1, t0);
    let ops = d.ready_ops(t0);
    assert_eq!(submits(&ops).len(), 3);
    for job in 0..3 {
        d.handle(
            Event::Submitted {
                job,
                result: Ok(CreatedTask {
                    view: view(&format!("t{job}"), TaskStatus::Pending),
                    replayed: false,
                }),
            },
            t0,
        );
    }
    // Ten seconds pass with no heartbeat (the lease is 3 s): a pause.
    let woke = t0 + Duration::from_secs(10);
    let ops = d.ready_ops(woke);
    assert!(
        ops.iter().all(|op| matches!(op, Op::Heartbeat { .. })) && !ops.is_empty(),
        "only the heartbeat goes out: {ops:?}"
    );
    assert!(d.ready_ops(woke).is_empty());
    assert_eq!(d.next_wakeup(), None, "no timer spins while the heartbeat is out");
    // Two of the three were claimed by another worker while this one slept.
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![(2, Fence(1))], totals(3))),
        },
        woke,
    );
    assert!(matches!(d.jobs()[0].state, JobState::Elsewhere));
    assert!(matches!(d.jobs()[1].state, JobState::Elsewhere));
    // Time goes on with heartbeats answered: the held job is polled, the others never.
    let mut polled: Vec<usize> = Vec::new();
    let mut now = woke;
    for _ in 0..600 {
        now += Duration::from_secs(1);
        for op in d.ready_ops(now) {
            match op {
                Op::Poll { job, .. } => polled.push(job),
                Op::Heartbeat { .. } => d.handle(
                    Event::Heartbeat {
                        result: Ok((vec![(2, Fence(1))], totals(3))),
                    },
                    now,
                ),
                _ => {}
            }
        }
        if !polled.is_empty() {
            break;
        }
    }
    assert_eq!(polled, [2], "work goes on for the job still held, only");
}

#[test]
fn a_heartbeat_answered_before_a_pause_does_not_vouch_for_after_it() {
    let mut d = worker(2, None);
    let t0 = Instant::now();
    let ops = d.ready_ops(t0);
    assert!(ops.iter().any(|op| matches!(op, Op::Heartbeat { .. })));
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![], totals(2))),
        },
        t0,
    );
    claim(&mut d, &[0, 1], 1, t0);
    submits(&d.ready_ops(t0));
    // A heartbeat goes out; its answer (both jobs held) arrives while the worker is stopped.
    let t1 = t0 + Duration::from_secs(1);
    assert!(d.ready_ops(t1).iter().any(|op| matches!(op, Op::Heartbeat { .. })));
    let woke = t1 + Duration::from_secs(60);
    let ops = d.ready_ops(woke);
    assert!(ops.is_empty(), "suspect, and a heartbeat is already out: {ops:?}");
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![(0, Fence(1)), (1, Fence(1))], totals(2))),
        },
        woke,
    );
    let ops = d.ready_ops(woke);
    assert!(
        !ops.is_empty() && ops.iter().all(|op| matches!(op, Op::Heartbeat { .. })),
        "the old answer proves nothing: only a fresh heartbeat goes out: {ops:?}"
    );
    // The fresh one says job 1 was taken meanwhile.
    d.handle(
        Event::Heartbeat {
            result: Ok((vec![(0, Fence(1))], totals(2))),
        },
        woke,
    );
    assert!(matches!(d.jobs()[1].state, JobState::Elsewhere));
    assert!(!matches!(d.jobs()[0].state, JobState::Elsewhere));
    assert!(d.next_wakeup().is_some(), "work goes on");
}

mod properties {
    use super::*;
    use crate::output::download::Downloaded;
    use proptest::prelude::*;

    /// The store as the database keeps it: each job's current fence, whether another worker took
    /// it, and the records it accepted (those under the job's current fence, and no others).
    #[derive(Default)]
    struct Store {
        fence: HashMap<usize, u64>,
        ours: HashSet<usize>,
        taken: HashSet<usize>,
        accepted: Vec<Record>,
        refused: usize,
    }

    impl Store {
        fn index(&self, d: &Dispatcher, record: &Record) -> Option<usize> {
            let id = record.job()?;
            d.plan.jobs.iter().position(|j| j.id.as_str() == id)
        }

        /// Takes what the dispatcher emitted, checking each record's fence as the database does.
        fn take(&mut self, d: &mut Dispatcher) {
            for (record, fence) in d.take_stamped() {
                let Some(job) = self.index(d, &record) else {
                    continue;
                };
                let current = self.fence.get(&job).copied();
                if fence.is_some() && fence.map(|f| f.0) == current && self.ours.contains(&job) {
                    self.accepted.push(record);
                } else {
                    self.refused += 1;
                }
            }
        }

        fn facts(&self, id: &str) -> crate::journal::JobFacts {
            let mut facts = crate::journal::JobFacts::default();
            for record in self.accepted.iter().filter(|r| r.job() == Some(id)) {
                facts.apply(record);
            }
            facts
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Issue 25: the dispatcher's property test on the shared path. Random claims, service
        /// answers, takeovers by another worker and heartbeats: every record the store accepts
        /// was made under the job's current claim; for every job this worker still holds, its
        /// facts are exactly what the store accepted; and billed + held never passes the cap.
        #[test]
        fn a_worker_writes_only_under_its_claims_and_its_facts_are_the_stores(
            jobs in 1usize..5,
            cap_cents in prop::option::of(70u64..400),
            choices in prop::collection::vec(any::<u8>(), 1..160),
        ) {
            let mut d = worker(jobs, cap_cents);
            let mut store = Store::default();
            let mut now = Instant::now();
            let mut pending: Vec<Op> = Vec::new();
            for (step, choice) in choices.iter().copied().enumerate() {
                match choice % 8 {
                    // Another worker claims one of ours (this one's lease ran out).
                    0 if !store.ours.is_empty() => {
                        let mut ours: Vec<usize> = store.ours.iter().copied().collect();
                        ours.sort_unstable();
                        let job = ours[usize::from(choice / 8) % ours.len()];
                        *store.fence.entry(job).or_default() += 1;
                        store.ours.remove(&job);
                        store.taken.insert(job);
                    }
                    1..=3 if !pending.is_empty() => {
                        let op = pending.remove(usize::from(choice) % pending.len());
                        let event = match op {
                            Op::Claim { n } => {
                                let mut got = Vec::new();
                                let mut fences = Vec::new();
                                for job in 0..jobs {
                                    if got.len() < n && !store.ours.contains(&job) && !store.taken.contains(&job) {
                                        let f = store.fence.entry(job).or_default();
                                        *f += 1;
                                        got.push(job);
                                        fences.push(Fence(*f));
                                    }
                                }
                                store.ours.extend(got.iter().copied());
                                let records = store
                                    .accepted
                                    .iter()
                                    .filter(|r| store.index(&d, r).is_some_and(|j| got.contains(&j)))
                                    .cloned()
                                    .collect();
                                Event::Claimed {
                                    result: Ok(Claimed { jobs: got, fences, records, open: jobs as u64 }),
                                }
                            }
                            Op::Heartbeat { .. } => {
                                let mut held: Vec<(usize, Fence)> =
                                    store.ours.iter().map(|&j| (j, Fence(store.fence[&j]))).collect();
                                held.sort_unstable();
                                let spent: Money = (0..jobs)
                                    .map(|j| store.facts(d.plan.jobs[j].id.as_str()).cost.unwrap_or_default())
                                    .sum();
                                Event::Heartbeat {
                                    result: Ok((held, SweepTotals {
                                        open: jobs as u64,
                                        workers: 1,
                                        spent,
                                        cap: cap_cents.map(Money::from_cents),
                                        ..SweepTotals::default()
                                    })),
                                }
                            }
                            Op::Submit { job, intent, .. } => {
                                // The intent is made durable first, under the op's fence.
                                let fence = d.fence_of(job);
                                let current = store.fence.get(&job).copied();
                                let fenced = !(fence.is_some() && fence.map(|f| f.0) == current && store.ours.contains(&job));
                                if let Some(intent) = intent {
                                    if fenced {
                                        store.refused += 1;
                                    } else {
                                        store.accepted.push(*intent);
                                    }
                                }
                                if fenced {
                                    Event::JournalFailed {
                                        job,
                                        error: WriteError {
                                            message: "claimed since".into(),
                                            disk_full: false,
                                            over_cap: false,
                                            fenced: true,
                                        },
                                    }
                                } else {
                                    Event::Submitted {
                                        job,
                                        result: Ok(CreatedTask {
                                            view: view(&format!("t{job}-{step}"), TaskStatus::Pending),
                                            replayed: false,
                                        }),
                                    }
                                }
                            }
                            Op::Poll { job, task_id } => {
                                let status = if choice % 3 == 0 { TaskStatus::Pending } else { TaskStatus::Completed };
                                Event::Polled { job, result: Ok(view(&task_id, status)) }
                            }
                            Op::Download { job, .. } => Event::Downloaded {
                                job,
                                result: Ok(Downloaded {
                                    path: format!("videos/{job}.mp4"),
                                    bytes: 10,
                                    checksum: "blake3:00".into(),
                                }),
                            },
                            Op::Prepare { job, .. } => Event::Prepared {
                                job,
                                result: Ok(crate::client::uploads::PreparedBody { body: String::new(), send_until: None }),
                            },
                        };
                        d.handle(event, now);
                    }
                    _ => {
                        now += Duration::from_millis(500);
                        pending.extend(d.ready_ops(now));
                    }
                }
                store.take(&mut d);
                for job in 0..jobs {
                    let held = !matches!(d.jobs()[job].state, JobState::Elsewhere);
                    // An intent handed out with its create is the dispatcher's before the store
                    // has it (the executor makes it durable first).
                    let intent_out = pending
                        .iter()
                        .any(|op| matches!(op, Op::Submit { job: j, intent: Some(_), .. } if *j == job));
                    if held && !intent_out && store.ours.contains(&job) {
                        let id = d.plan.jobs[job].id.to_string();
                        prop_assert_eq!(&store.facts(&id), &d.jobs()[job].facts, "job {} after step {}", job, step);
                    }
                }
                if let Some(cap) = cap_cents {
                    let committed = d.ledger().spent().saturating_add(d.ledger().reserved());
                    prop_assert!(committed <= Money::from_cents(cap), "{} over the cap", committed);
                }
            }
        }
    }
}

/// Issue 29: while the rate binds, a worker of three holds a third of `--concurrency` in flight
/// (the rate is divided among the workers, and so is what it can serve); a worker alone, or with
/// the rate to spare, holds all of it.
#[test]
fn a_rate_bound_worker_of_several_holds_its_share_of_the_concurrency() {
    let mut d = worker(60, None);
    d.settings.concurrency = 12;
    let now = Instant::now();
    let beat = |d: &mut Dispatcher, workers: u64, at: Instant| {
        let held: Vec<(usize, Fence)> = (0..60).map(|j| (j, Fence(1))).collect();
        d.handle(
            Event::Heartbeat {
                result: Ok((
                    held,
                    SweepTotals {
                        open: 60,
                        workers,
                        ..SweepTotals::default()
                    },
                )),
            },
            at,
        );
    };
    let refuse_all = |d: &mut Dispatcher, sent: &[(usize, String, bool)]| {
        for (job, _, _) in sent {
            d.handle(
                Event::Submitted {
                    job: *job,
                    result: Err(crate::client::ApiError::Status {
                        status: 400,
                        code: None,
                        message: "HTTP 400".into(),
                        retry_after: None,
                    }),
                },
                now,
            );
        }
    };
    claim(&mut d, &(0..60).collect::<Vec<_>>(), 1, now);
    beat(&mut d, 3, now);
    // The rate (10 a second, a third of it this worker's) is untouched: all twelve go.
    let sent = submits(&d.ready_ops(now));
    assert_eq!(sent.len(), 12, "with the rate to spare, all of --concurrency");
    // Those twelve requests in a moment are more than its share can carry: the rate binds.
    refuse_all(&mut d, &sent);
    let sent = submits(&d.ready_ops(now));
    assert_eq!(sent.len(), 4, "a third of --concurrency while the rate binds");
    assert!(
        submits(&d.ready_ops(now)).is_empty(),
        "and no more while those four are out"
    );
    // Alone on the sweep, the same worker under the same load holds all twelve again.
    refuse_all(&mut d, &sent);
    beat(&mut d, 1, now);
    let sent = submits(&d.ready_ops(now));
    assert_eq!(sent.len(), 12, "a worker alone holds all of --concurrency");
    refuse_all(&mut d, &sent);
    // Three workers again, once its requests have fallen well below its share: all twelve.
    let later = now + Duration::from_secs(30);
    beat(&mut d, 3, later);
    assert_eq!(submits(&d.ready_ops(later)).len(), 12, "the rate to spare again");
}
