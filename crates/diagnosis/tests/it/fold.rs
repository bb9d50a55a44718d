//! Property tests of the fold: JSON round trips, replay equals live
//! application wherever a snapshot splits the log, and bad events are
//! rejected without corrupting the state.

use proptest::prelude::*;
use rootcause_diagnosis::{ApplyError, DiagnosisEvent, DiagnosisState, EventKind, SessionId};
use uuid::Uuid;

use crate::support::{Action, action, created, run_live};

fn session() -> SessionId {
    SessionId(Uuid::from_u128(42))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn events_round_trip_through_json(actions in proptest::collection::vec(action(), 0..80)) {
        let (events, _, _) = run_live(session(), &actions);
        for e in &events {
            let text = serde_json::to_string(e).expect("serialize");
            let back: DiagnosisEvent = serde_json::from_str(&text).expect("deserialize");
            prop_assert_eq!(&back, e);
            // The stored form (kind column + data JSONB) round-trips too.
            let (kind, data) = e.kind.to_parts().expect("parts");
            prop_assert_eq!(kind, e.kind.name());
            prop_assert_eq!(&EventKind::from_parts(kind, data).expect("from parts"), &e.kind);
        }
    }

    #[test]
    fn replay_equals_live(actions in proptest::collection::vec(action(), 0..120), split in any::<prop::sample::Index>()) {
        let (events, live, _) = run_live(session(), &actions);
        // Full replay from the stored JSON.
        let decoded: Vec<DiagnosisEvent> = events
            .iter()
            .map(|e| serde_json::from_str(&serde_json::to_string(e).expect("ser")).expect("de"))
            .collect();
        let replayed = DiagnosisState::replay(&decoded).expect("replay");
        prop_assert_eq!(&replayed, &live);
        prop_assert_eq!(replayed.seq(), events.len() as u64);

        // Snapshot at any point (through JSON, as the store keeps it) + tail.
        let k = split.index(events.len());
        let mut snap = DiagnosisState::replay(&events[..=k]).expect("prefix");
        snap = serde_json::from_str(&serde_json::to_string(&snap).expect("ser")).expect("de");
        for e in &events[k + 1..] {
            snap.apply(e).expect("tail applies");
        }
        prop_assert_eq!(&snap, &live);
    }

    #[test]
    fn out_of_order_is_an_error_and_changes_nothing(actions in proptest::collection::vec(action(), 1..60), skip in 2u64..50) {
        let (events, live, _) = run_live(session(), &actions);
        let mut e = events.last().expect("at least genesis").clone();
        // Re-applying the last event (a duplicate) and skipping ahead are both refused.
        for seq in [live.seq(), live.seq() + skip] {
            e.seq = seq;
            let mut s = live.clone();
            let err = s.apply(&e).expect_err("out of order");
            prop_assert_eq!(err, ApplyError::OutOfOrder { last: live.seq(), got: seq });
            prop_assert_eq!(&s, &live);
        }
    }
}

#[test]
fn rejected_actions_are_exercised() {
    // The generator must produce both accepted and rejected events, or the
    // property above proves nothing about rejection.
    let actions = vec![
        Action::Resume,                     // not paused: rejected
        Action::Dispatch(1, "q".into()),    // ok
        Action::Start(0),                   // ok
        Action::Pause,                      // ok
        Action::Dispatch(2, "q".into()),    // paused: rejected
        Action::Resume,                     // ok
        Action::Conclude(0),                // ok
        Action::Pause,                      // terminal: rejected
        Action::Progress(0, "late".into()), // facts after the end are still recorded
        Action::BadSeq(1),                  // rejected
    ];
    let (events, state, rejected) = run_live(session(), &actions);
    assert_eq!(rejected, 4);
    assert_eq!(events.len(), 1 + 6);
    assert_eq!(state.status(), rootcause_diagnosis::Status::Completed);
}

#[test]
fn genesis_must_be_created_at_seq_one() {
    let mut g = created(session());
    g.seq = 2;
    assert!(matches!(
        DiagnosisState::genesis(&g),
        Err(ApplyError::NotGenesis { seq: 2, .. })
    ));
    let mut not_created = created(session());
    not_created.kind = EventKind::Resumed;
    assert!(matches!(
        DiagnosisState::genesis(&not_created),
        Err(ApplyError::NotGenesis {
            kind: "resumed",
            ..
        })
    ));
    assert_eq!(DiagnosisState::replay([]), Err(ApplyError::NoEvents));
}

#[test]
fn event_for_another_session_is_refused() {
    let g = created(session());
    let mut s = DiagnosisState::genesis(&g).expect("genesis");
    let mut other = created(SessionId(Uuid::from_u128(43)));
    other.seq = 2;
    other.kind = EventKind::Resumed;
    assert!(matches!(
        s.apply(&other),
        Err(ApplyError::WrongSession { .. })
    ));
    // A second `created` is refused too.
    let mut again = created(session());
    again.seq = 2;
    assert!(matches!(
        s.apply(&again),
        Err(ApplyError::AlreadyCreated { .. })
    ));
}

#[test]
fn pause_resume_restores_the_previous_status() {
    use crate::support::Action::*;
    let (_, s, _) = run_live(session(), &[Pause]);
    assert_eq!(s.status(), rootcause_diagnosis::Status::Paused);
    let (_, s, _) = run_live(session(), &[Pause, Resume]);
    assert_eq!(s.status(), rootcause_diagnosis::Status::Queued);
    let (_, s, _) = run_live(session(), &[Dispatch(0, "q".into()), Pause, Resume]);
    assert_eq!(s.status(), rootcause_diagnosis::Status::Running);
    let (_, s, _) = run_live(session(), &[Dispatch(0, "q".into()), Conclude(3)]);
    assert_eq!(s.status(), rootcause_diagnosis::Status::TimedOut);
}

#[test]
fn usage_totals_sum_over_tasks() {
    use crate::support::Action::*;
    let (_, s, _) = run_live(
        session(),
        &[
            Dispatch(1, "a".into()),
            Dispatch(2, "b".into()),
            Complete(0, 100, 10),
            Complete(1, 50, 5),
        ],
    );
    assert_eq!(s.usage().input_tokens, 150);
    assert_eq!(s.usage().output_tokens, 15);
    assert_eq!(s.usage().cost_micros, 150 * 3 + 15 * 15);
    let per_task: u64 = s.tasks().values().map(|t| t.usage.input_tokens).sum();
    assert_eq!(per_task, 150);
}

#[test]
fn status_names_round_trip() {
    use rootcause_diagnosis::Status;
    for s in Status::ALL {
        assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        // The stored name is the serde name too.
        assert_eq!(serde_json::to_value(s).expect("ser"), s.as_str());
    }
    let err = "done".parse::<Status>().expect_err("unknown");
    assert!(err.contains("timed_out"), "{err}");
}

#[test]
fn a_dispatched_task_records_when_it_was_dispatched() {
    use crate::support::Action::*;
    let (events, s, _) = run_live(session(), &[Dispatch(0, "q".into())]);
    let dispatched = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::AgentDispatched { .. }))
        .expect("dispatch event");
    let run = s.tasks().values().next().expect("task");
    assert_eq!(run.dispatched_at, Some(dispatched.occurred_at));
}

#[test]
fn a_snapshot_from_before_dispatch_times_still_loads() {
    use crate::support::Action::*;
    let (_, s, _) = run_live(session(), &[Dispatch(0, "q".into())]);
    let mut json = serde_json::to_value(&s).expect("to json");
    for task in json["tasks"].as_object_mut().expect("tasks").values_mut() {
        task.as_object_mut().expect("task").remove("dispatched_at");
    }
    let old: DiagnosisState = serde_json::from_value(json).expect("old snapshot");
    assert_eq!(
        old.tasks().values().next().expect("task").dispatched_at,
        None
    );
}
