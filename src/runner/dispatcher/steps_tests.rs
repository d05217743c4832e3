//! The dispatcher's transitions for steps (`needs:`): waiting for a parent, skipping, and the
//! service's answers to a continuation.

use super::tests::{settings, submits, view};
use super::*;
use crate::client::{ApiError, CreatedTask, TaskStatus};
use crate::runner::job::Event;

/// A base and one step (extend_video) continuing it.
fn chain_dispatcher() -> Dispatcher {
    let text = "defaults: { model: kling-v2.5-turbo-text-to-video-pro, duration_seconds: 5 }\nprompts:\n  - { id: base, prompt: \"a boat\" }\n  - { id: longer, needs: base, endpoint: extend_video, prompt: \"and on\" }\n";
    let manifest = crate::manifest::from_yaml(text, std::path::Path::new("m.yaml")).unwrap();
    let plan = Arc::new(crate::plan::expand(&manifest).unwrap());
    assert_eq!(plan.jobs[1].parent, Some(0));
    Dispatcher::new(
        plan,
        vec![Money::from_cents(45); 2],
        &Replayed::default(),
        &[false, false],
        settings(4, None),
        Instant::now(),
    )
}

fn base_created(id: &str) -> Event {
    Event::Submitted {
        job: 0,
        result: Ok(CreatedTask {
            view: view(id, TaskStatus::Pending),
            replayed: false,
        }),
    }
}

fn refused_with(job: usize, status: u16, code: &str) -> Event {
    Event::Submitted {
        job,
        result: Err(ApiError::Status {
            status,
            code: Some(code.into()),
            message: "no".into(),
            retry_after: None,
        }),
    }
}

#[test]
fn a_step_waits_for_its_parent_and_sends_the_parents_task_in_a_journaled_body() {
    let mut d = chain_dispatcher();
    let now = Instant::now();
    let ops = d.ready_ops(now);
    assert_eq!(submits(&ops).len(), 1, "only the base goes: the step waits");
    assert!(matches!(d.jobs()[1].state, JobState::Waiting));
    d.handle(base_created("t-base"), now);
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t-base", TaskStatus::Pending)),
        },
        now,
    );
    assert!(submits(&d.ready_ops(now)).is_empty(), "a pending parent holds its step");
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t-base", TaskStatus::Completed)),
        },
        now,
    );
    let ops = d.ready_ops(now);
    let step = ops
        .iter()
        .find_map(|op| match op {
            Op::Submit {
                job: 1,
                intent: Some(intent),
                body: sent,
                ..
            } => match &**intent {
                Record::Submitting { body, .. } => Some((body.clone(), sent.clone())),
                _ => None,
            },
            _ => None,
        })
        .expect("the step is submitted once its parent completed");
    let journaled = step.0.expect("the step's body is journaled with its intent");
    assert_eq!(Some(&journaled), step.1.as_ref(), "what is journaled is what is sent");
    let body: serde_json::Value = serde_json::from_str(&journaled).unwrap();
    assert_eq!(body["source_task_id"], "t-base");
}

#[test]
fn a_failed_parent_skips_its_step_and_continuation_refusals_are_data() {
    // The parent fails for good: the step is skipped, nothing held, never sent.
    let mut d = chain_dispatcher();
    let now = Instant::now();
    d.ready_ops(now);
    d.handle(refused_with(0, 422, "validation_error"), now);
    assert!(matches!(d.jobs()[0].state, JobState::Failed { .. }));
    assert!(matches!(&d.jobs()[1].state, JobState::Skipped { reason } if reason.starts_with("parent failed (invalid")));
    assert!(d.ready_ops(now).is_empty());
    assert!(d.idle());
    assert_eq!(d.ledger().reserved(), Money::ZERO);

    // 409 source_task_not_ready: that attempt ends unsent, the step goes again later under a new
    // key; 422 source_task_unusable: it fails with that reason, not retried.
    let mut d = chain_dispatcher();
    d.ready_ops(now);
    d.handle(base_created("t-base"), now);
    d.handle(
        Event::Polled {
            job: 0,
            result: Ok(view("t-base", TaskStatus::Completed)),
        },
        now,
    );
    let first = submits(&d.ready_ops(now));
    let (_, key1, _) = first.iter().find(|(j, ..)| *j == 1).cloned().unwrap();
    d.handle(refused_with(1, 409, "source_task_not_ready"), now);
    assert!(matches!(d.jobs()[1].state, JobState::Queued));
    assert_eq!(d.ledger().reserved(), Money::ZERO, "the refused attempt holds nothing");
    assert!(submits(&d.ready_ops(now)).is_empty(), "not at once");
    let later = now + Duration::from_secs(120);
    let again = submits(&d.ready_ops(later));
    let (_, key2, intent) = again.iter().find(|(j, ..)| *j == 1).cloned().unwrap();
    assert!(intent && key2 != key1 && key2.ends_with("-a2"), "{key1} then {key2}");
    d.handle(refused_with(1, 422, "source_task_unusable"), later);
    let failure = d.jobs()[1].failure().cloned().expect("failed");
    assert_eq!(failure.kind, FailureKind::Continuation);
    assert!(failure.message.contains("source_task_unusable"));
    assert!(submits(&d.ready_ops(later + Duration::from_secs(600))).is_empty());
}
