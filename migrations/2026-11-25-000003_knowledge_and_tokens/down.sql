DROP TABLE api_tokens;
DROP TABLE knowledge_documents;
