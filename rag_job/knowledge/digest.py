"""Checking knowledge-base files against the digests build-index wrote into kb.json.

A full SHA-256 of a multi-GB index at every job start is too slow (the wiki_dpr indexes are
3-36 GB), so build-index records three things per file (`FileDigest`) and each check reads
only what it needs:

- `size`: the file exists and has its recorded size (a stat: every load does this);
- `fingerprint`: SHA-256 over the size and three fixed 1 MiB blocks (start, middle, end):
  catches truncation and files swapped or copied over each other, even of equal size, for a
  few MiB of reads (the pre-flight check and every retrieval actor before it serves);
- `full`: the SHA-256 of every byte (`python -m rag_job verify-kb --full`).

Standard library only, like `layout`: anything that reads kb.json can afford it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from rag_job.knowledge.layout import (
    KB_META_FILE,
    PASSAGES_DIR,
    FileDigest,
    KnowledgeBaseLayoutError,
    KnowledgeBaseMeta,
    dir_size,
)

logger = logging.getLogger(__name__)

Level = Literal["size", "fingerprint", "full"]
LEVELS: tuple[Level, ...] = ("size", "fingerprint", "full")
#: Block size of the fingerprint; part of kb.json format 2, never change it.
FINGERPRINT_BLOCK = 1 << 20
_READ_CHUNK = 8 << 20


def fingerprint(path: str | Path) -> str:
    """SHA-256 over the file size and the 1 MiB blocks at its start, middle and end.

    Files up to 3 MiB are hashed whole, so for them the fingerprint sees every byte.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"rag-kb-fingerprint-1 {size}\n".encode())
    with path.open("rb") as handle:
        if size <= 3 * FINGERPRINT_BLOCK:
            digest.update(handle.read())
        else:
            for offset in (0, (size - FINGERPRINT_BLOCK) // 2, size - FINGERPRINT_BLOCK):
                handle.seek(offset)
                digest.update(handle.read(FINGERPRINT_BLOCK))
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_file(kb_dir: str | Path, relative: str, sha256: str | None = None) -> FileDigest:
    """The digest of `kb_dir/relative`; pass `sha256` when it was computed while writing."""
    path = Path(kb_dir) / relative
    return FileDigest(
        file=relative,
        bytes=path.stat().st_size,
        sha256=sha256 or sha256_file(path),
        fingerprint=fingerprint(path),
    )


class HashingWriter:
    """Writes to a file and hashes what it writes, so the SHA-256 costs no second read."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha256.update(data)
        return self._handle.write(data)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def passages_digests(kb_dir: str | Path) -> list[FileDigest]:
    """A digest of every file of the passages dataset, in a stable order."""
    kb_dir = Path(kb_dir)
    files = sorted(p for p in (kb_dir / PASSAGES_DIR).rglob("*") if p.is_file())
    return [digest_file(kb_dir, p.relative_to(kb_dir).as_posix()) for p in files]


@dataclass
class Verification:
    """What `verify_files` found: problems (the files cannot be used) and warnings (unchecked)."""

    kb_dir: Path | str
    level: Level
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    #: The file that recorded the digests (kb.json, or an index version's manifest).
    meta_file: str = KB_META_FILE
    written_by: str = "build-index"
    fix: str = (
        "restore the files as build-index wrote them, or rebuild the directory with "
        "`python -m rag_job build-index`"
    )

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        lines = [f"knowledge base {self.kb_dir} does not match its {self.meta_file} ({self.level} check):"]
        lines += [f"  {problem}" for problem in self.problems]
        lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Log the warnings; raise KnowledgeBaseLayoutError naming every problem at once."""
        for warning in self.warnings:
            logger.warning("%s", warning)
        if self.problems:
            raise KnowledgeBaseLayoutError(self.message())


def verify_files(
    kb_dir: str | Path,
    meta: KnowledgeBaseMeta,
    level: Level = "fingerprint",
    shards: Iterable[int] | None = None,
    passages: bool = True,
) -> Verification:
    """Check the index shard files (all, or `shards`) and the passages files against kb.json.

    Never raises for a bad file: every problem is collected, so one run names them all.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    from rag_job.storage import is_uri

    if is_uri(kb_dir):
        return _verify_remote_sizes(str(kb_dir), meta, shards, passages)
    kb_dir = Path(kb_dir)
    result = Verification(kb_dir=kb_dir, level=level)
    selected = [meta.shards[s] for s in (range(len(meta.shards)) if shards is None else shards)]
    recorded = [d for d in (s.digest() for s in meta.shards) if d is not None] + list(
        meta.passages_files or []
    )
    by_fingerprint = {d.fingerprint: d.file for d in recorded}
    holds: dict[str, str] = {}  # file -> the file whose recorded content it holds
    for shard in selected:
        digest = shard.digest()
        if digest is None:
            _check_size(kb_dir / shard.file, shard.bytes, result)
        else:
            _check(kb_dir, digest, level, by_fingerprint, holds, result)
    if passages:
        if meta.passages_files is None:
            _check_legacy_passages(kb_dir, meta, result)
        elif not (kb_dir / PASSAGES_DIR).is_dir():
            result.files_checked += 1
            result.problems.append(f"passages dataset {kb_dir / PASSAGES_DIR} is missing")
        else:
            for digest in meta.passages_files:
                _check(kb_dir, digest, level, by_fingerprint, holds, result)
    _report_swaps(holds, result)
    if not meta.verifiable:
        encoder = meta.ctx_encoder or "ENCODER"
        result.warnings.append(
            f"{kb_dir / KB_META_FILE} (format {meta.format_version}) records no checksums, so only file "
            "sizes were checked: truncated passages or swapped shard files of equal size cannot be "
            "detected. Rebuild it to add them: `python -m rag_job build-index --knowledge-base FILE "
            f"--ctx-encoder {encoder} --out {kb_dir}`"
        )
    return result


def verify_digests(
    kb_dir: str | Path,
    digests: list[FileDigest],
    meta_file: str,
    written_by: str,
    fix: str,
    level: Level = "fingerprint",
    recorded: list[FileDigest] | None = None,
) -> Verification:
    """Check files that some other record than kb.json lists (an index version's manifest).

    `recorded` (default: `digests`) is every digest of that record, so a file holding another
    listed file's content is reported as swapped, as `verify_files` does.
    """
    kb_dir = Path(kb_dir)
    result = Verification(kb_dir=kb_dir, level=level, meta_file=meta_file, written_by=written_by, fix=fix)
    by_fingerprint = {d.fingerprint: d.file for d in (recorded or digests)}
    holds: dict[str, str] = {}
    for digest in digests:
        _check(kb_dir, digest, level, by_fingerprint, holds, result)
    _report_swaps(holds, result)
    return result


def _verify_remote_sizes(
    kb_uri: str, meta: KnowledgeBaseMeta, shards: Iterable[int] | None, passages: bool
) -> Verification:
    """A knowledge base on an object store: every file kb.json lists is there with its size.

    Contents are not read here (that would download the index); each retrieval actor and
    trainer checks the fingerprints of the files it fetched before it uses them.
    """
    from rag_job.storage import file_sizes

    result = Verification(kb_dir=kb_uri, level="size")
    sizes = file_sizes(kb_uri)
    expected = {
        meta.shards[s].file: meta.shards[s].bytes
        for s in (range(len(meta.shards)) if shards is None else shards)
    }
    if passages:
        expected.update({d.file: d.bytes for d in meta.passages_files or []})
        if meta.passages_files is None and not any(name.startswith(f"{PASSAGES_DIR}/") for name in sizes):
            result.problems.append(f"passages dataset {kb_uri}/{PASSAGES_DIR} is missing")
    for name, size in expected.items():
        result.files_checked += 1
        if name not in sizes:
            result.problems.append(f"{kb_uri}/{name} is missing (kb.json lists it with {size} bytes)")
        elif sizes[name] != size:
            result.problems.append(
                f"{kb_uri}/{name} is {sizes[name]} bytes, kb.json recorded {size}: replaced or truncated"
            )
    result.warnings.append(
        f"{kb_uri} is on an object store: file sizes checked here, contents when each node fetches its files"
    )
    return result


def _check_size(path: Path, expected: int, result: Verification) -> bool:
    result.files_checked += 1
    if not path.is_file():
        result.problems.append(f"{path} is missing ({result.meta_file} lists it with {expected} bytes)")
        return False
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "grown"
        result.problems.append(
            f"{path} is {size} bytes, {result.meta_file} recorded {expected}: {what} or replaced"
        )
        return False
    return True


def _check(
    kb_dir: Path,
    digest: FileDigest,
    level: Level,
    by_fingerprint: dict[str, str],
    holds: dict[str, str],
    result: Verification,
) -> None:
    path = kb_dir / digest.file
    if not _check_size(path, digest.bytes, result) or level == "size":
        return
    try:
        actual = fingerprint(path)
        full_match = level != "full" or sha256_file(path) == digest.sha256
    except OSError as err:
        result.problems.append(f"{path} cannot be read: {err.strerror or err}")
        return
    if actual != digest.fingerprint:
        other = by_fingerprint.get(actual)
        if other is not None and other != digest.file:
            holds[digest.file] = other
        else:
            result.problems.append(
                f"{path} does not match its fingerprint in {result.meta_file}: changed since {result.written_by}"
            )
        return
    if not full_match:
        result.problems.append(
            f"{path} does not match its SHA-256 in {result.meta_file}: changed since {result.written_by}"
        )


def _report_swaps(holds: dict[str, str], result: Verification) -> None:
    """One line per swapped pair, naming both files; one per file copied over another."""
    done: set[str] = set()
    for file, other in sorted(holds.items()):
        if file in done:
            continue
        if holds.get(other) == file:
            result.problems.append(
                f"{result.kb_dir / file} and {result.kb_dir / other} are swapped: each holds the content "
                "build-index wrote to the other (a search would return the other shard's passage ids)"
            )
            done.update((file, other))
        else:
            result.problems.append(
                f"{result.kb_dir / file} holds the content build-index wrote to {result.kb_dir / other} "
                "(swapped or copied over it)"
            )
            done.add(file)


def _check_legacy_passages(kb_dir: Path, meta: KnowledgeBaseMeta, result: Verification) -> None:
    """Format 1 recorded only the passages directory's total size."""
    path = kb_dir / PASSAGES_DIR
    result.files_checked += 1
    if not path.is_dir():
        result.problems.append(f"passages dataset {path} is missing")
        return
    size = dir_size(path)
    if size != meta.passages_bytes:
        result.problems.append(
            f"passages dataset {path} holds {size} bytes, kb.json recorded {meta.passages_bytes}: "
            "a file was deleted, truncated or replaced"
        )
