//! The dispatcher as a worker of a shared sweep: it works only what it claims, gives up at once
//! what it lost, and takes back an intent the database refused for the cap.

use super::tests::{settings, submits, view};
use super::*;
use crate::client::{CreatedTask, TaskStatus};
use crate::journal::WriteError;
use crate::runner::job::Event;
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
            result: Ok((vec![0], totals(3))),
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
