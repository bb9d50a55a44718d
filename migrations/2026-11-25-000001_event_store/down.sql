DROP TABLE agent_executions;
DROP TABLE processed_messages;
DROP TABLE outbox;
DROP TABLE diagnosis_events;
DROP TABLE diagnosis_sessions;
