"""The knowledge base: ingest (CSV/TSV/JSONL -> passages), index (DPR encode + FAISS shards),
layout (kb.json, the light reader the operator imports too), versions and reindex (index versions
beside kb.json's, for hot swaps)."""
