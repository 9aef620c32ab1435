"""Read a memory-mapped index file into the page cache in the background, sequentially.

Mapping a cold index is instant, but then the first searches fault it in a page at a time: a
flat index of 2.9 GiB made a job's first optimizer step take about a minute here, twice as long
as reading the same file sequentially. So after an actor maps its index, a thread reads the file
in large chunks (skipping chunks already cached, checked with a non-blocking read), and the
searches that follow find their pages resident. The mapping and the page cache are the same
pages, so this costs no memory beyond what the searches would fault in anyway.

It stays out of the way when it cannot help: a file larger than the memory this process may
still use (an index served mapped precisely because it does not fit) is left to the faults, and
`RAG_INDEX_PREFETCH=never` turns it off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

PREFETCH_ENV = "RAG_INDEX_PREFETCH"
CHUNK_BYTES = 16 << 20
#: Prefetch only files up to this share of the memory still free to this process.
MEMORY_SHARE = 0.8


@dataclass
class Prefetch:
    """One file's background read: `seconds` is None until it finished (or stopped)."""

    path: Path
    size: int
    read_bytes: int = 0
    cached_bytes: int = 0
    seconds: float | None = None
    skipped: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __deepcopy__(self, memo: dict) -> Prefetch:
        """The same read: a copied searcher (transformers deep-copies a retriever) maps the same
        file, and one page cache serves both."""
        return self

    def __getstate__(self) -> dict:
        """Pickled (a searcher sent to another process), the figures travel, not the thread."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_stop", "_thread")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _stop=threading.Event(), _thread=None)

    def stop(self) -> None:
        """Ask the reader to stop after its current chunk (the searcher is being dropped)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the read finished, stopped or never started."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.seconds is not None or bool(self.skipped)

    def summary(self) -> dict:
        return {
            "prefetch_seconds": self.seconds,
            "prefetch_read_bytes": self.read_bytes,
            "prefetch_cached_bytes": self.cached_bytes,
            "prefetch_skipped": self.skipped or None,
        }


def prefetch_enabled(value: str | None = None) -> bool:
    """$RAG_INDEX_PREFETCH (auto by default); an unknown value names the fix."""
    mode = (value if value is not None else os.environ.get(PREFETCH_ENV, "auto")).strip().lower()
    if mode not in ("auto", "never"):
        raise ValueError(f"{PREFETCH_ENV}={mode!r} is not one of auto, never; unset it for auto")
    return mode == "auto"


def memory_headroom_bytes() -> int | None:
    """Memory this process can still fill: MemAvailable, capped by its cgroup's limit less the
    cgroup's anonymous memory (page cache counts against a pod's limit but is reclaimable)."""
    available = _meminfo_available()
    cgroup = _cgroup_headroom()
    known = [v for v in (available, cgroup) if v is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        anon = next(
            int(line.split()[1])
            for line in (root / "memory.stat").read_text().splitlines()
            if line.startswith("anon ")
        )
        return max(int(limit) - anon, 0)
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def start_prefetch(path: Path, headroom: int | None = None) -> Prefetch:
    """Start reading `path` into the page cache on a daemon thread (or say why not)."""
    path = Path(path)
    job = Prefetch(path=path, size=path.stat().st_size)
    if not prefetch_enabled():
        job.skipped = f"{PREFETCH_ENV}=never"
        return job
    headroom = memory_headroom_bytes() if headroom is None else headroom
    if headroom is not None and job.size > MEMORY_SHARE * headroom:
        job.skipped = (
            f"{job.size / 2**30:.1f} GiB is more than {MEMORY_SHARE:.0%} of the "
            f"{headroom / 2**30:.1f} GiB this process may still use; searches fault it in"
        )
        logger.info("not prefetching %s: %s", path, job.skipped)
        return job
    job._thread = threading.Thread(target=_read, args=(job,), name=f"prefetch-{path.name}", daemon=True)
    job._thread.start()
    return job


def _read(job: Prefetch) -> None:
    started = time.perf_counter()
    probe = bytearray(1)
    chunk = bytearray(CHUNK_BYTES)
    try:
        fd = os.open(job.path, os.O_RDONLY)
    except OSError as err:
        job.skipped = f"cannot open: {err}"
        return
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        for offset in range(0, job.size, CHUNK_BYTES):
            if job._stop.is_set():
                break
            if _is_cached(fd, offset, probe):
                job.cached_bytes += min(CHUNK_BYTES, job.size - offset)
                continue
            job.read_bytes += os.preadv(fd, [chunk], offset)
    except OSError as err:  # a file replaced or gone under us: the searches still work, only slower
        job.skipped = f"read stopped: {err}"
    finally:
        os.close(fd)
        job.seconds = time.perf_counter() - started
    logger.info(
        "prefetched %s: %.0f MiB read, %.0f MiB already cached, in %.1fs",
        job.path, job.read_bytes / 2**20, job.cached_bytes / 2**20, job.seconds,
    )  # fmt: skip


def _is_cached(fd: int, offset: int, probe: bytearray) -> bool:
    """Whether the chunk at `offset` looks resident: its first and last pages read without
    blocking (RWF_NOWAIT). Where the flag is missing, assume not and read it."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        return False
    try:
        for at in (offset, offset + CHUNK_BYTES - 1):
            if os.preadv(fd, [probe], at, flag) == 0 and at == offset:
                return False
    except (BlockingIOError, OSError):
        return False
    return True


def evict_from_page_cache(path: Path) -> int:
    """The inverse, for benches and tests of a cold start: write `path`'s dirty pages back (dirty
    pages cannot be dropped) and drop its pages from the page cache; returns its size. Pages a
    live process maps stay resident."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return Path(path).stat().st_size


def resident_fraction(path: Path) -> float | None:
    """Share of `path`'s pages in the page cache (mincore on a fresh mapping: starts no I/O);
    None where it cannot be asked (not Linux, an empty file)."""
    import ctypes
    import ctypes.util
    import mmap

    size = Path(path).stat().st_size
    if size == 0:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    except (OSError, AttributeError):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vector = ctypes.create_string_buffer(pages)
            if libc.mincore(address, size, vector) != 0:
                return None
            return sum(byte & 1 for byte in vector.raw[:pages]) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
