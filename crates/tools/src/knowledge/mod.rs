//! `knowledge_search`: PostgreSQL full-text search over the team's
//! runbooks, past incidents and concluded diagnoses (`knowledge_documents`).
//!
//! Documents are stored per tenant and keyed by `(tenant, kind, source)`, so
//! ingesting the same runbook again updates it in place. The table's
//! generated `search` column (GIN-indexed) finds the candidates; they are
//! ranked with BM25 computed from that column (see [`SEARCH_SQL`]), and the
//! query is expanded with the words of the most similar past incidents (see
//! [`search`]). `match=all` adds a `websearch_to_tsquery` filter.
//!
//! - [`ingest`]: runbooks from a directory of markdown files, past incidents
//!   from `past_incidents.jsonl`, whole bundles, and
//!   [`record_concluded_diagnosis`] for the orchestrator.
//! - [`query`]: turning free symptom text into search words.

pub mod ingest;
pub mod query;

use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Double, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::TenantId;
use rootcause_diagnosis::db::{PgPool, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tool::{ToolOutput, TypedTool};

pub use ingest::{
    IngestReport, PastIncident, ingest_bundle, ingest_past_incidents, ingest_runbooks,
    record_concluded_diagnosis, upsert_document,
};
pub use query::{MatchMode, build_query, incident_query, terms};

/// What a knowledge document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnowledgeKind {
    /// A runbook (markdown file).
    Runbook,
    /// An earlier incident with its root cause.
    PastIncident,
    /// A diagnosis Rootcause concluded.
    Diagnosis,
}

impl KnowledgeKind {
    /// The value of the `kind` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runbook => "runbook",
            Self::PastIncident => "past_incident",
            Self::Diagnosis => "diagnosis",
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct KnowledgeHit {
    /// `runbook`, `past_incident` or `diagnosis`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// File name, incident id or session id.
    #[diesel(sql_type = Text)]
    pub source: String,
    /// Title.
    #[diesel(sql_type = Text)]
    pub title: String,
    /// Full text (not shown to the model; the snippet is).
    #[diesel(sql_type = Text)]
    #[serde(skip)]
    pub body: String,
    /// Relevance (higher is better; comparable within one query only).
    #[diesel(sql_type = Double)]
    pub rank: f64,
    /// The best-matching fragments, matches between « and ».
    #[diesel(sql_type = Text)]
    pub snippet: String,
    /// Category, root cause, resolution, ... as ingested.
    #[diesel(sql_type = Jsonb)]
    pub metadata: Value,
}

/// The search, with its parameters as `$1..$6`: tenant, query text, expansion
/// text, kinds (or NULL), limit, and a `websearch_to_tsquery` filter (or
/// NULL for "any word").
///
/// Ranking is Okapi BM25 (k1 = 1.2, b = 0.75) computed from the documents'
/// `search` vectors: term frequency with title words (weight A) counted
/// three times, inverse document frequency over the tenant's documents, and
/// length normalisation by token count (the average length is taken over at
/// most 1000 of the tenant's documents, which bounds its cost). `ts_rank` has
/// no IDF, so generic words ("error", "service") would outweigh the rare ones
/// that identify a failure mode.
pub const SEARCH_SQL: &str = "
WITH q AS (
    SELECT lexeme, max(w) AS w FROM (
        SELECT unnest(tsvector_to_array(to_tsvector('english', $2))) AS lexeme, 1.0::float8 AS w
        UNION ALL
        SELECT unnest(tsvector_to_array(to_tsvector('english', $3))), 1.0::float8
    ) x GROUP BY lexeme),
any_q AS (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS tq FROM q),
corpus AS (
    SELECT (SELECT count(*) FROM knowledge_documents WHERE tenant = $1)::float8 AS n,
           greatest(avg((SELECT sum(cardinality(u.weights)) FROM unnest(s.search) u)), 1)::float8 AS avgdl
    FROM (SELECT search FROM knowledge_documents WHERE tenant = $1 LIMIT 1000) s),
cand AS (
    SELECT d.id, d.kind, d.source, d.title, d.body, d.metadata, d.updated_at, d.search
    FROM knowledge_documents d, any_q
    WHERE d.tenant = $1
      AND d.search @@ any_q.tq
      AND ($6::text IS NULL OR d.search @@ websearch_to_tsquery('english', $6))),
terms AS (
    SELECT c.id, u.lexeme,
           (3.0 * cardinality(array_positions(u.weights, 'A'))
            + cardinality(u.weights) - cardinality(array_positions(u.weights, 'A')))::float8 AS tf,
           sum(cardinality(u.weights)) OVER (PARTITION BY c.id)::float8 AS dl
    FROM cand c, unnest(c.search) u),
tf AS (SELECT * FROM terms WHERE lexeme IN (SELECT lexeme FROM q)),
df AS (SELECT lexeme, count(*)::float8 AS df FROM tf GROUP BY lexeme),
scored AS (
    SELECT tf.id,
           sum(q.w * ln((corpus.n - df.df + 0.5) / (df.df + 0.5) + 1)
               * tf.tf * 2.2 / (tf.tf + 1.2 * (0.25 + 0.75 * tf.dl / corpus.avgdl)))::float8 AS rank
    FROM tf JOIN q USING (lexeme) JOIN df USING (lexeme) CROSS JOIN corpus
    GROUP BY tf.id),
top AS (
    SELECT c.kind, c.source, c.title, c.body, c.metadata, c.updated_at, s.rank
    FROM scored s JOIN cand c ON c.id = s.id
    WHERE $4::text[] IS NULL OR c.kind = ANY ($4)
    ORDER BY s.rank DESC, c.updated_at DESC, c.source
    LIMIT $5)
SELECT t.kind, t.source, t.title, t.body, t.rank, t.metadata,
       ts_headline('english', t.body,
                   coalesce(websearch_to_tsquery('english', $6), (SELECT tq FROM any_q)),
                   'MaxFragments=2, MaxWords=30, MinWords=10, StartSel=«, StopSel=»') AS snippet
FROM top t
ORDER BY t.rank DESC, t.updated_at DESC, t.source";

/// How many similar past incidents and diagnoses expand a query.
pub const EXPANSION_DOCS: i64 = 3;

/// A search over a tenant's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// Free text; its words are scored with OR semantics.
    pub text: String,
    /// Web-search syntax every hit must match (`match=all`), if any.
    pub must_match: Option<String>,
    /// Only these kinds (all when `None`).
    pub kinds: Option<Vec<KnowledgeKind>>,
    /// Hits to return.
    pub limit: i64,
    /// Expand the query with the text of the most similar past incidents
    /// and diagnoses (pseudo-relevance feedback).
    pub expand: bool,
}

/// Hits, and the past incidents/diagnoses that expanded the query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Best first.
    pub hits: Vec<KnowledgeHit>,
    /// Sources of the documents whose text expanded the query.
    pub expanded_with: Vec<String>,
    /// The expansion text (a parameter of the reproducing query).
    pub expansion: String,
}

async fn run_search(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    text: &str,
    expansion: &str,
    kinds: Option<&[KnowledgeKind]>,
    limit: i64,
    must_match: Option<&str>,
) -> Result<Vec<KnowledgeHit>, ToolError> {
    let kinds: Option<Vec<String>> =
        kinds.map(|ks| ks.iter().map(|k| k.as_str().to_owned()).collect());
    diesel::sql_query(SEARCH_SQL)
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(text)
        .bind::<Text, _>(expansion)
        .bind::<Nullable<Array<Text>>, _>(kinds)
        .bind::<BigInt, _>(limit)
        .bind::<Nullable<Text>, _>(must_match)
        .load(conn)
        .await
        .map_err(|e| ToolError::Store(StoreError::from(e)))
}

/// Searches a tenant's documents.
///
/// With `expand`, the search runs twice: first over past incidents and
/// diagnoses, then again with the text of the [`EXPANSION_DOCS`] best of
/// them added to the query. Symptoms rarely name their cause, but a similar
/// past incident's root cause and resolution do, and those words find the
/// runbook.
///
/// # Errors
/// [`ToolError::Store`] on a database error.
pub async fn search(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    req: &SearchRequest,
) -> Result<SearchResult, ToolError> {
    let mut expansion = String::new();
    let mut expanded_with = Vec::new();
    if req.expand {
        let similar = run_search(
            conn,
            tenant,
            &req.text,
            "",
            Some(&[KnowledgeKind::PastIncident, KnowledgeKind::Diagnosis]),
            EXPANSION_DOCS,
            req.must_match.as_deref(),
        )
        .await?;
        for h in similar {
            expansion.push_str(&h.title);
            expansion.push('\n');
            expansion.push_str(&h.body);
            expansion.push('\n');
            expanded_with.push(h.source);
        }
    }
    let hits = run_search(
        conn,
        tenant,
        &req.text,
        &expansion,
        req.kinds.as_deref(),
        req.limit,
        req.must_match.as_deref(),
    )
    .await?;
    Ok(SearchResult {
        hits,
        expanded_with,
        expansion,
    })
}

/// The `knowledge_search` tool: the context's tenant only.
pub struct KnowledgeSearchTool {
    pool: PgPool,
}

impl KnowledgeSearchTool {
    /// The tool's name.
    pub const NAME: &'static str = "knowledge_search";

    /// The tool over the knowledge base in `pool`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Arguments of `knowledge_search`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeSearchArgs {
    /// Symptoms, error messages, component names.
    pub query: String,
    /// `any` (default): documents matching any word, best first; `all`:
    /// web-search syntax as typed (AND, "phrases", or, -exclusions).
    #[serde(rename = "match")]
    pub mode: Option<MatchMode>,
    /// Only these kinds.
    pub kinds: Option<Vec<KnowledgeKind>>,
    /// Hits to return.
    pub limit: Option<i64>,
    /// Expand with similar past incidents (default true).
    pub expand: Option<bool>,
}

#[async_trait]
impl TypedTool for KnowledgeSearchTool {
    type Args = KnowledgeSearchArgs;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        "Full-text search over the team's runbooks, past incidents (with root cause and \
         resolution) and earlier Rootcause diagnoses. Pass symptoms, error messages and component \
         names; match=any (default) ranks documents by how many and how rare the matching words \
         are, match=all takes web-search syntax (\"exact phrase\", or, -exclude)."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                "match": {"type": "string", "enum": ["any", "all"], "default": "any"},
                "kinds": {"type": "array", "items": {"enum": ["runbook", "past_incident", "diagnosis"]}, "uniqueItems": true, "minItems": 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                "expand": {"type": "boolean", "default": true, "description": "also use the words of the 3 most similar past incidents (their root causes) to rank"}
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn run(
        &self,
        ctx: &ToolContext,
        args: KnowledgeSearchArgs,
    ) -> Result<ToolOutput, ToolError> {
        let mode = args.mode.unwrap_or(MatchMode::Any);
        let text = terms(&args.query).join(" ");
        if text.is_empty() {
            return Err(ToolError::bad_argument(
                Self::NAME,
                "/query",
                "the query has no searchable words",
            ));
        }
        let req = SearchRequest {
            text,
            must_match: (mode == MatchMode::All).then(|| args.query.trim().to_owned()),
            kinds: args.kinds.clone(),
            limit: args.limit.unwrap_or(5).clamp(1, 20),
            expand: args.expand.unwrap_or(true),
        };
        let mut conn = self.pool.get().await.map_err(StoreError::from)?;
        let result = search(&mut conn, &ctx.tenant, &req).await?;
        let kinds_sql = req.kinds.as_ref().map_or_else(
            || "NULL".to_owned(),
            |ks| {
                format!(
                    "ARRAY[{}]",
                    ks.iter()
                        .map(|k| format!("'{}'", k.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        );
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let query = format!(
            "{}\n-- $1 = {}, $2 = {}, $3 = {}, $4 = {kinds_sql}, $5 = {}, $6 = {}",
            SEARCH_SQL.trim(),
            lit(ctx.tenant.as_str()),
            lit(&req.text),
            lit(&result.expansion),
            req.limit,
            req.must_match
                .as_deref()
                .map_or_else(|| "NULL".to_owned(), lit),
        );
        let mut out = ToolOutput::new(
            json!({
                "terms": req.text,
                "expanded_with": result.expanded_with,
                "hits": result.hits.len(),
                "results": result.hits,
            }),
            query,
            "knowledge_base",
        );
        if result.hits.is_empty() {
            out = out.with_warning("no runbook, past incident or diagnosis matches");
        }
        Ok(out)
    }
}
