"""Inputs and outputs anywhere: local paths, mounted volumes and object-store URIs.

Every path a job takes (model, knowledge base, data, checkpoints, outputs) may be a local
path or a URI that fsspec opens (`s3://`, `gs://`, `az://`, `hdfs://`, ...; credentials and
endpoints come from the usual environment, e.g. AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL).

Readers need local files (FAISS, `datasets`, `from_pretrained`), so a remote input is copied
once per machine into a cache (`fetch`), keyed by its URI and revalidated by every file's
size and ETag or modification time: a second worker on the same node, or a restarted one,
reuses the copy, and a changed object is fetched again. Outputs are written locally and
uploaded at the end (`publish`); Ray Train writes checkpoints through `ray_storage`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Where remote inputs are cached on each machine; defaults to the system temp dir.
CACHE_ENV_VAR = "RAG_JOB_CACHE_DIR"
_MANIFEST = ".rag-job-fetched.json"


class StorageError(OSError):
    """A URI that cannot be read or written; the message names it and the cause."""


def is_uri(path: str | os.PathLike) -> bool:
    """True for `scheme://...` other than `file://` (which is a local path)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    """A local path as a Path (a `file://` prefix stripped)."""
    text = str(path)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI alike."""
    if is_uri(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(local_path(base).joinpath(*parts))


def _filesystem(uri: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        scheme = uri.split("://", 1)[0]
        raise StorageError(
            f"cannot open {uri}: {err} (the {scheme}:// filesystem needs its fsspec package, "
            "e.g. s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from err


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path(tempfile.gettempdir()) / "rag-job-cache")


@dataclass(frozen=True)
class Fetched:
    """A remote input copied to local disk."""

    path: Path
    files: int
    bytes: int
    seconds: float
    reused: bool


def exists(path: str) -> bool:
    if not is_uri(path):
        return local_path(path).exists()
    fs, remote = _filesystem(path)
    return fs.exists(remote)


def read_text(path: str) -> str:
    """A small file's text (kb.json, a config), local or remote."""
    if not is_uri(path):
        return local_path(path).read_text(encoding="utf-8")
    fs, remote = _filesystem(path)
    try:
        with fs.open(remote, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise
    except Exception as err:  # every filesystem raises its own errors; the message names the URI
        raise StorageError(f"cannot read {path}: {err}") from err


def _listing(fs, remote: str, only: tuple[str, ...]) -> dict[str, dict]:
    """Relative path -> (size, version) of every file under `remote` (or the file itself)."""
    try:
        if fs.isfile(remote):
            info = fs.info(remote)
            return {"": _version(info)}
        found = fs.find(remote, withdirs=False, detail=True)
    except FileNotFoundError:
        found = {}
    except Exception as err:
        raise StorageError(f"cannot list {remote}: {err}") from err
    prefix = remote.rstrip("/") + "/"
    listing = {}
    for name, info in found.items():
        relative = name[len(prefix) :] if name.startswith(prefix) else name.rsplit("/", 1)[-1]
        if not only or any(relative == want or relative.startswith(want.rstrip("/") + "/") for want in only):
            listing[relative] = _version(info)
    return listing


def _version(info: dict) -> dict:
    tag = (
        info.get("ETag")
        or info.get("etag")
        or info.get("md5Hash")
        or info.get("mtime")
        or info.get("LastModified")
    )
    return {"size": int(info.get("size") or 0), "version": str(tag) if tag is not None else ""}


def file_sizes(path: str) -> dict[str, int]:
    """Relative path -> size of every file under a URI (empty when nothing is there)."""
    fs, remote = _filesystem(path)
    return {name: entry["size"] for name, entry in _listing(fs, remote, ()).items()}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this machine (workers sharing a node)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(path: str, only: Iterable[str] = (), what: str = "input") -> Fetched:
    """A local copy of `path` (a file or a directory); local paths are returned as they are.

    `only` restricts a directory to these relative files or sub-directories (a retrieval actor
    fetches kb.json and its own shard, not the whole knowledge base). Logs what it copied and
    how long it took; `what` names the input in that line and in errors.
    """
    started = time.perf_counter()
    if not is_uri(path):
        return Fetched(local_path(path), 0, 0, 0.0, True)
    only = tuple(sorted(set(only)))
    fs, remote = _filesystem(path)
    listing = _listing(fs, remote, only)
    if not listing:
        missing = f" (looked for {', '.join(only)})" if only else ""
        raise FileNotFoundError(f"{what} {path} does not exist or is empty{missing}")
    key = hashlib.sha256(json.dumps([path, only]).encode()).hexdigest()[:20]
    name = remote.rstrip("/").rsplit("/", 1)[-1] or "root"
    target = cache_root() / f"{key}-{name}"
    manifest = target.parent / f"{target.name}{_MANIFEST}"
    total = sum(entry["size"] for entry in listing.values())
    with _locked(target.parent / f"{target.name}.lock"):
        if manifest.is_file() and target.exists() and json.loads(manifest.read_text()) == listing:
            return Fetched(target, len(listing), total, time.perf_counter() - started, True)
        manifest.unlink(missing_ok=True)
        staging = target.parent / f"{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.unlink(missing_ok=True)
        try:
            if "" in listing:  # a single file
                staging.parent.mkdir(parents=True, exist_ok=True)
                fs.get(remote, str(staging))
            else:
                for relative in listing:
                    local = staging / relative
                    local.parent.mkdir(parents=True, exist_ok=True)
                    fs.get(f"{remote.rstrip('/')}/{relative}", str(local))
        except Exception as err:
            raise StorageError(f"cannot copy {what} {path} to {staging}: {err}") from err
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        staging.rename(target)
        manifest.write_text(json.dumps(listing))
    seconds = time.perf_counter() - started
    logger.info(
        "fetched %s %s: %d file(s), %.1f MB in %.1fs to %s",
        what,
        path,
        len(listing),
        total / 1e6,
        seconds,
        target,
    )
    return Fetched(target, len(listing), total, seconds, False)


def publish(local_dir: Path, destination: str) -> float:
    """Upload `local_dir`'s files under `destination` (a URI); returns the seconds it took."""
    started = time.perf_counter()
    fs, remote = _filesystem(destination)
    files = [p for p in sorted(local_dir.rglob("*")) if p.is_file()]
    try:
        for file in files:
            fs.put_file(str(file), f"{remote.rstrip('/')}/{file.relative_to(local_dir).as_posix()}")
    except Exception as err:
        raise StorageError(f"cannot upload {local_dir} to {destination}: {err}") from err
    seconds = time.perf_counter() - started
    logger.info("uploaded %d file(s) from %s to %s in %.1fs", len(files), local_dir, destination, seconds)
    return seconds


def probe_writable(destination: str) -> None:
    """Write and delete a small object under `destination`; StorageError says why it cannot."""
    fs, remote = _filesystem(destination)
    probe = f"{remote.rstrip('/')}/.rag-job-write-probe-{os.getpid()}"
    try:
        fs.pipe_file(probe, b"rag_job pre-flight\n")
        fs.rm_file(probe)
    except Exception as err:
        raise StorageError(f"cannot write to {destination}: {type(err).__name__}: {err}") from err


def staging_dir(destination: str) -> Path:
    """The local directory a run writes to before `publish` uploads it to `destination`."""
    key = hashlib.sha256(destination.encode()).hexdigest()[:20]
    return cache_root() / "outputs" / key


def ray_storage(path: str):
    """(storage_path, storage_filesystem) for Ray Train's RunConfig.

    Local paths go as absolute paths; URIs go through fsspec wrapped as a pyarrow filesystem,
    so checkpoints reach every store the inputs can come from, with the same credentials.
    """
    if not is_uri(path):
        return str(local_path(path).resolve()), None
    import pyarrow.fs

    fs, remote = _filesystem(path)
    return remote, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))
