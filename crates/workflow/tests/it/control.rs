//! Pause, resume and cancel in every phase.

use rootcause_diagnosis::{Command, EvidenceKind, Phase, Status};
use rootcause_workflow::{Control, Node, WorkflowError, control};

use crate::support::Sim;

/// A diagnosis brought to each phase, with the work of that phase waiting.
fn in_each_phase() -> Vec<(Phase, Sim)> {
    let mut out = Vec::new();
    let intake = Sim::complex();
    out.push((Phase::Intake, intake));
    let mut planning = Sim::complex();
    planning.settle();
    out.push((Phase::Planning, planning));
    let mut investigating = Sim::complex();
    investigating.run_to_investigation();
    out.push((Phase::Investigating, investigating));
    let mut evaluating = Sim::complex();
    evaluating.run_to_investigation();
    evaluating.finish_investigation(50, &[EvidenceKind::Log]);
    out.push((Phase::Evaluating, evaluating));
    let mut synthesizing = Sim::complex();
    synthesizing.run_to_investigation();
    synthesizing.finish_investigation(90, &[EvidenceKind::Log, EvidenceKind::Metric]);
    synthesizing.complete(synthesizing.coordinator_id(1, Node::Evaluate));
    synthesizing.settle();
    out.push((Phase::Synthesizing, synthesizing));
    for (phase, sim) in &out {
        assert_eq!(sim.state.phase(), *phase);
    }
    out
}

/// Finishes the one open task of the phase, so the workflow has something
/// to do next.
fn finish_open(sim: &mut Sim) {
    for t in sim.open() {
        sim.complete(t);
    }
}

#[test]
fn paused_in_each_phase_dispatches_nothing_and_running_tasks_finish() {
    for (phase, mut sim) in in_each_phase() {
        let open = sim.open();
        sim.control(Control::Pause {
            reason: "look at it".into(),
        });
        assert_eq!(sim.status(), Status::Paused, "{phase:?}");
        finish_open(&mut sim);
        for t in &open {
            assert!(
                sim.state.tasks()[t].status.is_finished(),
                "{phase:?}: a running task still reports while paused"
            );
        }
        assert_eq!(sim.next(), [], "{phase:?}: paused means no new work");
        assert_eq!(sim.state.phase(), phase, "{phase:?}: it stays put");
    }
}

#[test]
fn resumed_in_each_phase_continues_from_the_state() {
    for (phase, mut sim) in in_each_phase() {
        finish_open(&mut sim);
        let expected = sim.next();
        assert!(!expected.is_empty(), "{phase:?}: there is work to do");
        sim.control(Control::Pause {
            reason: "hold".into(),
        });
        sim.control(Control::Resume);
        assert_ne!(sim.status(), Status::Paused);
        assert_eq!(
            sim.next(),
            expected,
            "{phase:?}: resume picks up where it was"
        );
    }
}

#[test]
fn cancelled_in_each_phase_ends_and_stays_ended() {
    for (phase, mut sim) in in_each_phase() {
        sim.control(Control::Cancel {
            reason: "wrong incident".into(),
        });
        assert_eq!(sim.status(), Status::Cancelled, "{phase:?}");
        assert_eq!(sim.state.phase(), Phase::Done);
        finish_open(&mut sim);
        sim.now = sim.state.deadline();
        assert_eq!(sim.next(), [], "{phase:?}: not even the deadline acts");
        for c in [
            Control::Pause { reason: "x".into() },
            Control::Resume,
            Control::Cancel { reason: "x".into() },
        ] {
            assert_eq!(
                control(&sim.state, &c),
                Err(WorkflowError::Ended {
                    status: Status::Cancelled
                })
            );
        }
    }
}

#[test]
fn cancel_while_paused_ends_it() {
    let mut sim = Sim::complex();
    sim.run_to_investigation();
    sim.control(Control::Pause { reason: "x".into() });
    sim.control(Control::Cancel { reason: "y".into() });
    assert_eq!(sim.status(), Status::Cancelled);
}

#[test]
fn controls_that_do_not_fit_are_refused_with_the_status() {
    let mut sim = Sim::complex();
    sim.settle();
    assert_eq!(
        control(&sim.state, &Control::Resume),
        Err(WorkflowError::NotPaused {
            status: Status::Running
        })
    );
    sim.control(Control::Pause { reason: "x".into() });
    assert_eq!(
        control(&sim.state, &Control::Pause { reason: "x".into() }),
        Err(WorkflowError::NotPausable {
            status: Status::Paused
        })
    );
}

#[test]
fn controls_come_from_bus_commands() {
    assert_eq!(
        Control::from_command(&Command::PauseDiagnosis { reason: "r".into() }),
        Some(Control::Pause { reason: "r".into() })
    );
    assert_eq!(
        Control::from_command(&Command::ResumeDiagnosis),
        Some(Control::Resume)
    );
    assert_eq!(
        Control::from_command(&Command::CancelDiagnosis { reason: "r".into() }),
        Some(Control::Cancel { reason: "r".into() })
    );
}
