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

#[tokio::test(flavor = "multi_thread")]
async fn a_row_the_worker_wrote_for_the_attempt_is_completed_not_duplicated() {
    let world = World::new("").await;
    let orchestrator = world.start().await;
    let session = world.start_diagnosis().await;
    let planner = world.bus.take_task(WAIT).await.expect("the planning task");
    // A worker that records its attempt as running when it starts.
    let mut conn = world.deps.db.connect().await.expect("connect");
    let running = rootcause_diagnosis::db::AgentExecutionRow {
        id: uuid::Uuid::now_v7(),
        session_id: session.as_uuid(),
        task_id: planner.body.task_id.as_uuid(),
        agent: "coordinator".into(),
        attempt: 1,
        provider: None,
        model: None,
        tokens_in: 0,
        tokens_out: 0,
        tokens_cached: 0,
        cost_micros: 0,
        duration_ms: 0,
        outcome: "running".into(),
        error: None,
        started_at: chrono::Utc::now(),
        finished_at: None,
    };
    rootcause_llm::store::record_execution(&mut conn, &running)
        .await
        .expect("the worker's row");
    world.answer(session, &planner.body).await;
    world
        .until(session, "the planner's completion", WAIT, |e| {
            count(e, "agent_completed") == 1
        })
        .await;
    assert_eq!(world.executions(session).await, (1, 1));
    #[derive(diesel::QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = diesel::sql_types::Text)]
        outcome: String,
    }
    use diesel_async::RunQueryDsl;
    let row: Outcome =
        diesel::sql_query("SELECT outcome FROM agent_executions WHERE session_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(session.as_uuid())
            .get_result(&mut conn)
            .await
            .expect("the row");
    assert_eq!(row.outcome, "completed");
    orchestrator.stop().await;
}
