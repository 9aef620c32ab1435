"""Index versions: several FAISS indexes of one knowledge base side by side.

End-to-end retriever training re-encodes the passages with the context encoder it trains and
rebuilds the index while the retrieval actors serve the previous one. Each rebuild is a
version; the passages (ids, titles, texts) are shared, the embeddings and index files are not:

    KB/kb.json, KB/index*.faiss          version 0: the layout build-index writes, unchanged
    KB/passages/                         shared; its `embeddings` column is version 0's
    KB/index/v<N>/shard-SS-of-TT.faiss   version N's index shards (same id ranges rule as kb.json)
    KB/index/v<N>/embeddings-SS-of-TT.npy  the embeddings those shards index, float32 [rows, dim]
    KB/index/v<N>/manifest.json          version N's files with their digests; written last
    KB/index/current.json                the version the actors serve (absent: version 0)

A `v<N>` directory without its manifest is an unfinished build and is not a version. Every
knowledge base built before versions existed reads as version 0 alone. Light like `layout`:
pydantic and the standard library only (numpy where embeddings are read).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from rag_job.knowledge.digest import Verification, verify_digests
from rag_job.knowledge.layout import (
    FileDigest,
    KnowledgeBaseLayoutError,
    KnowledgeBaseMeta,
    ShardInfo,
    check_shard_ranges,
    load_meta,
    write_atomically,
)

if TYPE_CHECKING:
    import numpy as np

VERSIONS_DIR = "index"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "current.json"
_VERSION_DIR = re.compile(r"^v(\d+)$")


class VersionShardInfo(ShardInfo):
    embeddings: FileDigest | None = Field(
        default=None, description="The shard's embeddings (.npy); None: the passages' column (version 0)."
    )


class IndexVersion(BaseModel):
    """One index over the knowledge base's passages: version 0 is kb.json's, N > 0 a manifest's."""

    version: int = Field(ge=0)
    num_passages: int = Field(ge=1)
    dim: int = Field(ge=1)
    index_type: str
    shards: list[VersionShardInfo]
    ctx_encoder: str = ""
    created_unix: int = 0

    def as_meta(self, base: KnowledgeBaseMeta) -> KnowledgeBaseMeta:
        """kb.json's metadata with this version's index files: what `ShardSearcher` reads."""
        return base.model_copy(
            update={
                "dim": self.dim,
                "index_type": self.index_type,
                "shards": [ShardInfo(**s.model_dump(exclude={"embeddings"})) for s in self.shards],
                "ctx_encoder": self.ctx_encoder,
                "created_unix": self.created_unix,
            }
        )

    def digests(self, shards: list[int] | None = None) -> list[FileDigest]:
        """Index and embeddings digests of the given shards (all when None)."""
        chosen = [self.shards[s] for s in (range(len(self.shards)) if shards is None else shards)]
        out = []
        for shard in chosen:
            index = shard.digest()
            out += [d for d in (index, shard.embeddings) if d is not None]
        return out


def version_dir(kb_dir: str | Path, version: int) -> Path:
    return Path(kb_dir) / VERSIONS_DIR / f"v{version}"


def manifest_path(kb_dir: str | Path, version: int) -> Path:
    return version_dir(kb_dir, version) / MANIFEST_FILE


def version_numbers_on_disk(kb_dir: str | Path) -> list[int]:
    """Every `v<N>` directory, finished or not (a new version never reuses a number)."""
    root = Path(kb_dir) / VERSIONS_DIR
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := _VERSION_DIR.match(p.name)))


def list_versions(kb_dir: str | Path) -> list[int]:
    """The finished versions: 0 (kb.json's index) and every N whose manifest exists."""
    return [0, *(n for n in version_numbers_on_disk(kb_dir) if n > 0 and manifest_path(kb_dir, n).is_file())]


def next_version(kb_dir: str | Path) -> int:
    return max([0, *version_numbers_on_disk(kb_dir)]) + 1


def load_version(kb_dir: str | Path, version: int, base: KnowledgeBaseMeta | None = None) -> IndexVersion:
    """Version `version` of the knowledge base; every problem names the file, as `load_meta` does."""
    base = base or load_meta(kb_dir)
    if version == 0:
        return IndexVersion(
            version=0,
            num_passages=base.num_passages,
            dim=base.dim,
            index_type=base.index_type,
            shards=[VersionShardInfo(**s.model_dump()) for s in base.shards],
            ctx_encoder=base.ctx_encoder,
            created_unix=base.created_unix,
        )
    path = manifest_path(kb_dir, version)
    if not path.is_file():
        raise KnowledgeBaseLayoutError(
            f"{path} is missing: index version {version} of {kb_dir} does not exist or was never finished "
            f"(versions: {', '.join(map(str, list_versions(kb_dir)))})"
        )
    try:
        index_version = IndexVersion.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as err:
        raise KnowledgeBaseLayoutError(f"{path} is corrupt: {err}") from err
    if index_version.version != version:
        raise KnowledgeBaseLayoutError(f"{path} is corrupt: it names version {index_version.version}")
    if index_version.num_passages != base.num_passages:
        raise KnowledgeBaseLayoutError(
            f"{path} covers {index_version.num_passages} passages but kb.json has {base.num_passages}: "
            "the version was built for other passages; write it again"
        )
    check_shard_ranges(path, list(index_version.shards), index_version.num_passages)
    if any(s.embeddings is None for s in index_version.shards):
        raise KnowledgeBaseLayoutError(f"{path} is corrupt: a shard lists no embeddings file")
    return index_version


def version_embeddings(kb_dir: str | Path, version: int) -> np.ndarray:
    """Version `version`'s passage embeddings, one row per passage in id order (memory-mapped
    shard files, concatenated); version 0's are the passages' own `embeddings` column."""
    import numpy as np

    if version == 0:
        from rag_job.retrieval.searcher import load_passages

        return np.asarray(load_passages(kb_dir).with_format("numpy")["embeddings"], dtype=np.float32)
    shards = load_version(kb_dir, version).shards
    return np.concatenate([np.load(Path(kb_dir) / s.embeddings.file, mmap_mode="r") for s in shards])


def verify_version(
    kb_dir: str | Path, index_version: IndexVersion, shards: list[int] | None = None
) -> Verification:
    """Check a version's index and embeddings files (all shards, or `shards`) against its manifest."""
    return verify_digests(
        kb_dir,
        index_version.digests(shards),
        meta_file=str(Path(VERSIONS_DIR) / f"v{index_version.version}" / MANIFEST_FILE),
        written_by="the version was written",
        fix="write the index version again (`write_index_version`)",
        recorded=index_version.digests(),
    )


def current_version(kb_dir: str | Path) -> int:
    """The version the actors serve: what a restarted actor loads. 0 when never swapped."""
    path = Path(kb_dir) / VERSIONS_DIR / CURRENT_FILE
    if not path.is_file():
        return 0
    try:
        return int(json.loads(path.read_text())["version"])
    except (ValueError, KeyError, TypeError) as err:
        raise KnowledgeBaseLayoutError(f"{path} is corrupt: {err}") from err


def set_current_version(kb_dir: str | Path, version: int) -> None:
    """Record the served version atomically (a reader sees the old or the new one, never half)."""
    root = Path(kb_dir) / VERSIONS_DIR
    root.mkdir(exist_ok=True)
    write_atomically(root / CURRENT_FILE, json.dumps({"version": version}) + "\n")


def delete_version(kb_dir: str | Path, version: int) -> Path:
    """Delete version `version`'s files; never version 0 (kb.json's, which export and RagRetriever
    read) nor the current one. The manifest goes first, so a half-deleted directory is unfinished."""
    if version == 0:
        raise ValueError("version 0 is the knowledge base's own index (kb.json); it is never deleted")
    if version == current_version(kb_dir):
        raise ValueError(f"index version {version} of {kb_dir} is the current one; swap to another first")
    path = version_dir(kb_dir, version)
    manifest_path(kb_dir, version).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=False)
    return path
