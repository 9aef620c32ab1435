"""The knowledge-base directory layout and its `kb.json` metadata.

Light on purpose (pydantic and the standard library only): the operator reads `kb.json` to
size retrieval pods. The file checks (`verify_files`) live in `rag_job.knowledge.digest`,
which is just as light.

Format history: version 1 recorded shard sizes only. Version 2 adds, per FAISS shard file
and per file of the passages dataset, the size, a full SHA-256 and a cheap fingerprint
(`rag_job.knowledge.digest`), so truncated, deleted and swapped files are caught before they
serve wrong ids. Version 1 files still load; they are reported as unverifiable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

KB_META_FILE = "kb.json"
PASSAGES_DIR = "passages"
#: The kb.json format this code writes; every version up to it is read.
KB_FORMAT_VERSION = 2


class KnowledgeBaseLayoutError(ValueError):
    """A knowledge-base directory that is missing, incomplete or corrupt; the message names the path."""


class FileDigest(BaseModel):
    """What build-index recorded about one file it wrote (kb.json format 2)."""

    file: str = Field(description="Path relative to the knowledge-base directory.")
    bytes: int = Field(ge=0, description="File size.")
    sha256: str = Field(description="SHA-256 of the whole file (checked by `verify-kb --full`).")
    fingerprint: str = Field(description="SHA-256 of the size and three 1 MiB blocks (checked at start).")


class ShardInfo(BaseModel):
    file: str = Field(description="Index file name, relative to the knowledge-base directory.")
    start: int = Field(ge=0, description="First global passage id in this shard.")
    end: int = Field(ge=0, description="One past the last global passage id.")
    bytes: int = Field(ge=0, description="Index file size.")
    sha256: str | None = Field(default=None, description="SHA-256 of the index file (format 2).")
    fingerprint: str | None = Field(default=None, description="Fingerprint of the index file (format 2).")

    @classmethod
    def written(cls, digest: FileDigest, start: int, end: int, **extra) -> ShardInfo:
        """The record of a shard file just written, from its digest."""
        return cls(
            file=digest.file,
            start=start,
            end=end,
            bytes=digest.bytes,
            sha256=digest.sha256,
            fingerprint=digest.fingerprint,
            **extra,
        )

    def digest(self) -> FileDigest | None:
        """This shard's file digest, or None for a kb.json that recorded none (format 1)."""
        if self.sha256 is None or self.fingerprint is None:
            return None
        return FileDigest(file=self.file, bytes=self.bytes, sha256=self.sha256, fingerprint=self.fingerprint)


class KnowledgeBaseMeta(BaseModel):
    format_version: int = KB_FORMAT_VERSION
    num_passages: int = Field(ge=1)
    dim: int = Field(ge=1)
    index_type: str
    shards: list[ShardInfo]
    passages_bytes: int = Field(ge=0)
    passages_files: list[FileDigest] | None = Field(
        default=None, description="Every file of the passages dataset (format 2)."
    )
    ctx_encoder: str = ""
    created_unix: int = 0

    @property
    def index_bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    @property
    def verifiable(self) -> bool:
        """Whether build-index recorded digests for every file (kb.json format 2)."""
        return self.passages_files is not None and all(s.digest() is not None for s in self.shards)


def shard_file_name(number: int, shards: int) -> str:
    """`index.faiss` for one shard (the name RagRetriever examples use), numbered files otherwise."""
    return "index.faiss" if shards == 1 else f"index-shard-{number:02d}-of-{shards:02d}.faiss"


def write_atomically(path: Path, text: str) -> None:
    """Write a metadata file so that a reader sees the old file or the new one, never half of it.

    Each call stages under a name of its own, so two writers racing (a lease taken over while
    its old owner's heartbeat writes; two hosts on one volume) never write one staged file."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        staged.write_text(text)
        staged.replace(path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def load_meta(kb_dir: str | Path) -> KnowledgeBaseMeta:
    """Read and check kb.json itself; every problem names the path and how to fix it.

    This reads metadata only (the operator sizes pods from kb.json alone, without the index
    files); `rag_job.knowledge.digest.verify_files` checks the files against it.
    """
    meta_path, text = _read_meta_text(kb_dir)
    try:
        meta = KnowledgeBaseMeta.model_validate_json(text)
    except (ValidationError, ValueError) as err:
        raise KnowledgeBaseLayoutError(f"{meta_path} is corrupt: {err}") from err
    if meta.format_version > KB_FORMAT_VERSION:
        raise KnowledgeBaseLayoutError(
            f"{meta_path} has format version {meta.format_version}, newer than this rag_job reads "
            f"({KB_FORMAT_VERSION}); upgrade rag_job or rebuild the index with this version's build-index"
        )
    check_shard_ranges(meta_path, meta.shards, meta.num_passages)
    return meta


def check_shard_ranges(meta_path: str | Path, shards: list[ShardInfo], num_passages: int) -> None:
    """Shards must cover passages 0..num_passages contiguously (kb.json and index-version manifests)."""
    covered = 0
    for shard in shards:
        if shard.start != covered or shard.end <= shard.start:
            raise KnowledgeBaseLayoutError(f"{meta_path} is corrupt: shard ranges must be contiguous from 0")
        covered = shard.end
    if covered != num_passages:
        raise KnowledgeBaseLayoutError(
            f"{meta_path} is corrupt: shards cover {covered} passages, num_passages is {num_passages}"
        )


def _read_meta_text(kb_dir: str | Path) -> tuple[str, str]:
    """(kb.json's path, its text) for a local directory or an object-store URI."""
    from rag_job.storage import is_uri, join, read_text

    if is_uri(kb_dir):
        meta_path = join(str(kb_dir), KB_META_FILE)
        try:
            return meta_path, read_text(meta_path)
        except FileNotFoundError as err:
            raise KnowledgeBaseLayoutError(
                f"{meta_path} does not exist: {kb_dir} holds no knowledge base written by "
                "`python -m rag_job build-index` (upload the whole directory it wrote)"
            ) from err
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
    return str(meta_path), meta_path.read_text()


def local_knowledge_base(kb_dir: str | Path, shards: list[int] | None = None) -> Path:
    """A local knowledge-base directory: `kb_dir` itself, or a copy of a URI's kb.json,
    passages and the given index shards (all when None) in this machine's cache."""
    from rag_job.storage import fetch, is_uri, local_path

    if not is_uri(kb_dir):
        return local_path(kb_dir)
    meta = load_meta(kb_dir)
    chosen = range(len(meta.shards)) if shards is None else shards
    files = [KB_META_FILE, PASSAGES_DIR, *(meta.shards[s].file for s in chosen)]
    return fetch(str(kb_dir), only=files, what="knowledge base").path


def index_path(kb_dir: str | Path, meta: KnowledgeBaseMeta, shard: int) -> Path:
    return Path(kb_dir) / meta.shards[shard].file


def passages_path(kb_dir: str | Path) -> Path:
    return Path(kb_dir) / PASSAGES_DIR
