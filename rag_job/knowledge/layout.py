"""The knowledge-base directory layout and its `kb.json` metadata.

Light on purpose (pydantic only): the operator reads `kb.json` to size retrieval pods.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

KB_META_FILE = "kb.json"
PASSAGES_DIR = "passages"
KB_FORMAT_VERSION = 1


class KnowledgeBaseLayoutError(ValueError):
    """A knowledge-base directory that is missing, incomplete or corrupt; the message names the path."""


class ShardInfo(BaseModel):
    file: str = Field(description="Index file name, relative to the knowledge-base directory.")
    start: int = Field(ge=0, description="First global passage id in this shard.")
    end: int = Field(ge=0, description="One past the last global passage id.")
    bytes: int = Field(ge=0, description="Index file size.")


class KnowledgeBaseMeta(BaseModel):
    format_version: int = KB_FORMAT_VERSION
    num_passages: int = Field(ge=1)
    dim: int = Field(ge=1)
    index_type: str
    shards: list[ShardInfo]
    passages_bytes: int = Field(ge=0)
    ctx_encoder: str = ""
    created_unix: int = 0

    @property
    def index_bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)


def shard_file_name(number: int, shards: int) -> str:
    """`index.faiss` for one shard (the name RagRetriever examples use), numbered files otherwise."""
    return "index.faiss" if shards == 1 else f"index-shard-{number:02d}-of-{shards:02d}.faiss"


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def load_meta(kb_dir: str | Path) -> KnowledgeBaseMeta:
    """Read and check kb.json; every problem names the path and how to fix it."""
    kb_dir = Path(kb_dir)
    meta_path = kb_dir / KB_META_FILE
    if not kb_dir.is_dir():
        raise KnowledgeBaseLayoutError(
            f"knowledge base directory {kb_dir} does not exist; build it with `python -m rag_job build-index`"
        )
    if not meta_path.is_file():
        raise KnowledgeBaseLayoutError(
            f"{meta_path} is missing: {kb_dir} was not written by `python -m rag_job build-index`"
        )
    try:
        meta = KnowledgeBaseMeta.model_validate_json(meta_path.read_text())
    except (ValidationError, ValueError) as err:
        raise KnowledgeBaseLayoutError(f"{meta_path} is corrupt: {err}") from err
    covered = 0
    for shard in meta.shards:
        if shard.start != covered or shard.end <= shard.start:
            raise KnowledgeBaseLayoutError(f"{meta_path} is corrupt: shard ranges must be contiguous from 0")
        covered = shard.end
    if covered != meta.num_passages:
        raise KnowledgeBaseLayoutError(
            f"{meta_path} is corrupt: shards cover {covered} passages, num_passages is {meta.num_passages}"
        )
    return meta


def index_path(kb_dir: str | Path, meta: KnowledgeBaseMeta, shard: int) -> Path:
    return Path(kb_dir) / meta.shards[shard].file


def passages_path(kb_dir: str | Path) -> Path:
    return Path(kb_dir) / PASSAGES_DIR
