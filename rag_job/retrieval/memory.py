"""What a retrieval process's memory is made of: shared file pages vs private anonymous memory.

RSS alone misleads once the index is memory-mapped: it counts every page of the mapped files
this process touched, though those pages live once in the page cache and every actor on the
node shares them. What does not share is the anonymous memory (heap: a read-in index, Python,
FAISS's buffers), so that is reported beside RSS, with PSS (each shared page divided among
the processes mapping it).
"""

from __future__ import annotations

from pathlib import Path

_ROLLUP = Path("/proc/self/smaps_rollup")
_FIELDS = {"Rss": "rss_bytes", "Pss": "pss_bytes", "Anonymous": "anon_bytes"}


def process_memory() -> dict[str, int]:
    """{rss_bytes, pss_bytes, anon_bytes, file_bytes} of this process (kernel's smaps_rollup, one
    cheap read); without it (not Linux) RSS from psutil and the rest as None."""
    try:
        text = _ROLLUP.read_text()
    except OSError:
        import psutil

        return {"rss_bytes": psutil.Process().memory_info().rss, "pss_bytes": None, "anon_bytes": None,
                "file_bytes": None}  # fmt: skip
    found: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        if name in _FIELDS:
            found[_FIELDS[name]] = int(value.split()[0]) * 1024  # kB
    found["file_bytes"] = found["rss_bytes"] - found["anon_bytes"]
    return found
