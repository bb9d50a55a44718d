// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;
}

diesel::table! {
    agent_executions (id) {
        id -> Uuid,
        session_id -> Uuid,
        task_id -> Uuid,
        agent -> Text,
        attempt -> Int4,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        tokens_in -> Int8,
        tokens_out -> Int8,
        tokens_cached -> Int8,
        cost_micros -> Int8,
        duration_ms -> Int8,
        outcome -> Text,
        error -> Nullable<Text>,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    agent_tools (agent, tool) {
        agent -> Text,
        tool -> Text,
        enabled -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Uuid,
        tenant -> Text,
        name -> Text,
        token_hash -> Bytea,
        scopes -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    diagnosis_events (id) {
        id -> Uuid,
        session_id -> Uuid,
        seq -> Int8,
        parent_id -> Nullable<Uuid>,
        kind -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    diagnosis_sessions (session_id) {
        session_id -> Uuid,
        tenant -> Text,
        status -> Text,
        title -> Text,
        last_seq -> Int8,
        snapshot -> Nullable<Jsonb>,
        snapshot_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    knowledge_documents (id) {
        id -> Uuid,
        tenant -> Text,
        kind -> Text,
        source -> Text,
        title -> Text,
        body -> Text,
        metadata -> Jsonb,
        search -> Nullable<Tsvector>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        message_id -> Uuid,
        session_id -> Nullable<Uuid>,
        exchange -> Text,
        routing_key -> Text,
        payload -> Jsonb,
        headers -> Jsonb,
        created_at -> Timestamptz,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        parked_at -> Nullable<Timestamptz>,
        park_reason -> Nullable<Text>,
    }
}

diesel::table! {
    processed_messages (consumer, message_id) {
        consumer -> Text,
        message_id -> Uuid,
        session_id -> Nullable<Uuid>,
        processed_at -> Timestamptz,
    }
}

diesel::joinable!(agent_executions -> diagnosis_sessions (session_id));
diesel::joinable!(diagnosis_events -> diagnosis_sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    agent_executions,
    agent_tools,
    api_tokens,
    diagnosis_events,
    diagnosis_sessions,
    knowledge_documents,
    outbox,
    processed_messages,
);
