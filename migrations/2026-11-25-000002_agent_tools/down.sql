DROP TABLE agent_tools;
