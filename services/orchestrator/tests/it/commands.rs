//! Commands and reports at the edges: the arm decided at start, a start
//! delivered twice, a report nobody can apply.

use std::time::Duration;

use lapin::options::BasicGetOptions;
use rootcause_bus::consumer::REASON_HEADER;
use rootcause_diagnosis::{
    AgentArm, AgentKind, AgentReport, Command, DiagnosisOptions, Envelope, Mode, SessionId, TaskId,
    TenantId,
};

use crate::support::{World, count, incident};

const WAIT: Duration = Duration::from_secs(30);

fn start(options: DiagnosisOptions) -> Command {
    Command::StartDiagnosis {
        tenant: TenantId::new("acme"),
        incident: incident(),
        mode: Some(Mode::Simple),
        deadline: None,
        options,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_arm_is_decided_at_start_by_the_flag_unless_the_client_forced_one() {
    let world = World::new("[agents]\nmode = \"llm\"\n").await;
    let orchestrator = world.start().await;

    let by_flag = SessionId::new();
    world
        .command(by_flag, start(DiagnosisOptions::default()))
        .await;
    let task = world.bus.take_task(WAIT).await.expect("the planning task");
    assert_eq!(task.session_id, by_flag);
    assert_eq!(task.body.arm, AgentArm::Llm, "agents.mode = llm decides");
    assert_eq!(
        world.state(by_flag).await.map(|s| s.arm()),
        Some(AgentArm::Llm)
    );

    let forced = SessionId::new();
    world
        .command(
            forced,
            start(DiagnosisOptions::default().with_arm(AgentArm::Offline)),
        )
        .await;
    let task = world.bus.take_task(WAIT).await.expect("the planning task");
    assert_eq!(task.session_id, forced);
    assert_eq!(task.body.arm, AgentArm::Offline, "the client's choice wins");
    assert_eq!(
        world.state(forced).await.map(|s| s.arm()),
        Some(AgentArm::Offline)
    );
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_delivered_twice_creates_one_diagnosis_and_dispatches_once() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = SessionId::new();
    let envelope = Envelope::new(session, start(DiagnosisOptions::default()));
    for _ in 0..2 {
        world
            .bus
            .publisher
            .publish(
                &world.bus.topology.commands_exchange(),
                rootcause_bus::topology::COMMANDS_KEY,
                &envelope,
            )
            .await
            .expect("published");
    }
    let first = world.bus.take_task(WAIT).await.expect("the planning task");
    assert_eq!(first.body.agent, AgentKind::Coordinator);
    assert!(
        world.bus.take_task(Duration::from_secs(1)).await.is_none(),
        "the copy dispatched nothing"
    );
    let events = world.events(session).await;
    assert_eq!(count(&events, "created"), 1);
    assert_eq!(count(&events, "agent_dispatched"), 1);
    orchestrator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_about_an_unknown_diagnosis_is_dead_lettered_naming_it() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = SessionId::new();
    world
        .report(
            session,
            AgentReport::Started {
                task_id: TaskId::new(),
                worker: "w".into(),
            },
        )
        .await;
    let queue = world.bus.topology.dead_letters_queue();
    let deadline = std::time::Instant::now() + WAIT;
    let message = loop {
        let got = world
            .bus
            .channel()
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get");
        if let Some(m) = got {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = rootcause_bus::consumer::header_str(
        message.delivery.properties.headers().as_ref(),
        REASON_HEADER,
    )
    .expect("a reason header");
    assert!(
        reason.contains(&session.to_string()) && reason.contains("not found"),
        "{reason}"
    );
    orchestrator.stop().await;
}
