-- Which tool each agent may use. The registry reads this (cached with a
-- short TTL), so an operator can disable a tool without a deploy.
CREATE TABLE agent_tools (
    agent      TEXT NOT NULL,
    tool       TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, tool)
);

-- The defaults of the architecture page.
INSERT INTO agent_tools (agent, tool) VALUES
    ('log', 'elasticsearch_search'),
    ('metric', 'prometheus_query'),
    ('code', 'git_log'),
    ('code', 'git_show'),
    ('code', 'git_blame'),
    ('code', 'deploy_history'),
    ('knowledge', 'knowledge_search'),
    ('database', 'sql_diagnostics');
