"""Knowledge bases for the file-check tests: small synthetic ones and copies of the session's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from rag_job.knowledge.layout import KB_META_FILE


def synthetic_kb(out_dir: Path, num_passages: int = 20, dim: int = 8, shards: int = 2) -> Path:
    """A flat knowledge base of random vectors; equal shard sizes when `num_passages % shards == 0`."""
    from rag_job.knowledge.index import write_knowledge_base
    from rag_job.knowledge.ingest import Passage

    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((num_passages, dim), dtype=np.float32)
    passages = [Passage(source_id=str(i), title=f"t{i}", text=f"passage {i}") for i in range(num_passages)]
    write_knowledge_base(passages, embeddings, out_dir, "flat", shards)
    return out_dir


def copy_kb(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def downgrade_to_format_1(kb_dir: Path) -> None:
    """Rewrite kb.json as the code before format 2 wrote it: no checksums, no passages file list."""
    meta_path = kb_dir / KB_META_FILE
    data = json.loads(meta_path.read_text())
    data["format_version"] = 1
    data.pop("passages_files")
    for shard in data["shards"]:
        del shard["sha256"], shard["fingerprint"]
    meta_path.write_text(json.dumps(data, indent=2) + "\n")


def swap(first: Path, second: Path) -> None:
    staged = first.with_suffix(".swap")
    first.rename(staged)
    second.rename(first)
    staged.rename(second)
