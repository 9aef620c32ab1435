"""Images for the real test nodes, built here in seconds: no registry is reachable, none is used.

Three docker-archive tarballs that `ctr images import` loads into each node's containerd:

- the pod sandbox ("pause"): a static C binary that waits for signals and reaps children;
- the job image, under the name the examples use: a skeleton root filesystem (users `ray`
  1000:100 and the operator's 10001, /tmp, /home/ray) whose `/usr`, Python and project come
  from the host, read-only, through the node runtime's base OCI spec (`base_runtime_spec`);
- the operator image, under the chart's name: the same skeleton, entrypoint
  `python -m rag_operator run`, uid 10001, as images/operator.Dockerfile has it.

Why the host's Python and not a Debian root filesystem with the pinned wheels: installing
torch, Ray and transformers into an image costs minutes and gigabytes on 2 cores for every
fresh machine; the host's virtualenv is the one the tests run anyway. The production images
stay images/*.Dockerfile; these are test images and say so in their labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .toolchain import REPO

PAUSE_IMAGE = "rag-finetune.local/pause:test"
#: Where the production job image keeps the project (images/job.Dockerfile's WORKDIR).
JOB_WORKDIR = "/home/ray/rag-finetune"
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
static void stop(int sig) { (void)sig; _exit(0); }
int main(void) {
    signal(SIGINT, stop); signal(SIGTERM, stop); signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


def project_version() -> str:
    """pyproject.toml's version: the tag of the examples' and the chart's images."""
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("pyproject.toml has no version line")


def job_image_name() -> str:
    return f"ghcr.io/rag-finetune/rag-job:{project_version()}-cpu"


def operator_image_name() -> str:
    return f"ghcr.io/rag-finetune/rag-finetune-operator:{project_version()}"


@dataclass(frozen=True)
class ImageSpec:
    """One single-layer image: files in its root filesystem and its OCI config."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content (mode 0644, root)
    executables: dict[str, bytes] = field(default_factory=dict)  # path -> content (0755)
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    workdir: str = "/"
    skeleton: bool = True  # the shared directories, users and library links


def host_mounts() -> list[str]:
    """Host directories a test container sees read-only: /usr, the Python the virtualenv was
    made from, the virtualenv and the project (at its own path: the editable install and the
    virtualenv's scripts name it)."""
    paths = ["/usr", sys.base_prefix, sys.prefix, str(REPO)]
    unique: list[str] = []
    for path in paths:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in unique):
            unique.append(path)
    return unique


def _skeleton(tar: tarfile.TarFile, extra_dirs: list[str]) -> None:
    made: set[str] = set()

    def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        if path in made:  # a later entry would override an earlier one's owner
            return
        made.add(path)
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
        tar.addfile(info)

    for path in ("etc", "dev", "proc", "sys", "run", "root", "home", "var", "data", "usr"):
        directory(path)
    directory("tmp", 0o1777)
    directory("var/tmp", 0o1777)
    directory("home/ray", 0o755, 1000, 100)
    for path in extra_dirs:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            directory("/".join(parts[:depth]))
    # Merged /usr (Debian 12): /bin, /lib, ... are links into /usr, as on the host.
    for link in ("bin", "sbin", "lib", "lib64"):
        host = Path("/") / link
        if host.is_symlink():
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
            tar.addfile(info)


SKELETON_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/bash\nray:x:1000:100:ray:/home/ray:/bin/bash\n"
    b"rfo:x:10001:10001:operator:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n",
    "etc/group": b"root:x:0:\nusers:x:100:ray\nrfo:x:10001:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n",
}


def _layer(spec: ImageSpec) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if spec.skeleton:
            _skeleton(tar, [p for p in host_mounts() if p != "/usr"] + [JOB_WORKDIR])
        files = {**(SKELETON_FILES if spec.skeleton else {}), **spec.files}
        if spec.skeleton and Path("/etc/ld.so.cache").exists():
            files["etc/ld.so.cache"] = Path("/etc/ld.so.cache").read_bytes()
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for path, data in sorted(spec.executables.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_archive(spec: ImageSpec, path: Path) -> Path:
    """A docker-archive (`docker save` layout) of spec at path."""
    layer = _layer(spec)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": list(spec.env),
            "Entrypoint": list(spec.entrypoint) or None,
            "Cmd": list(spec.cmd) or None,
            "User": spec.user,
            "WorkingDir": spec.workdir,
            "Labels": {"org.opencontainers.image.description": "rag-finetune-operator test image"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [spec.name], "Layers": ["layer/layer.tar"]}]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in (
            (config_name, config_bytes),
            ("layer/layer.tar", layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def pause_binary(directory: Path) -> bytes:
    """Compile the sandbox's pause program (static, so it needs nothing from the image)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("no C compiler (gcc) to build the pod sandbox's pause binary")
    source, binary = directory / "pause.c", directory / "pause"
    directory.mkdir(parents=True, exist_ok=True)
    source.write_text(PAUSE_C)
    subprocess.run([gcc, "-static", "-O2", "-o", str(binary), str(source)], check=True, capture_output=True)
    return binary.read_bytes()


def python_env() -> tuple[str, ...]:
    path = f"{Path(sys.prefix) / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return (f"PATH={path}", "PYTHONUNBUFFERED=1", "LANG=C.UTF-8")


def build_images(directory: Path) -> dict[str, Path]:
    """Write the pause, job and operator archives under directory; image name -> archive."""
    specs = [
        ImageSpec(
            PAUSE_IMAGE,
            executables={"pause": pause_binary(directory / "pause-build")},
            entrypoint=("/pause",),
            skeleton=False,
        ),
        ImageSpec(
            job_image_name(),
            env=(*python_env(), "HOME=/home/ray"),
            user="1000:100",
            workdir=JOB_WORKDIR,
            cmd=("bash",),
        ),
        ImageSpec(
            operator_image_name(),
            env=(*python_env(), "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp"),
            user="10001:10001",
            entrypoint=("python", "-m", "rag_operator"),
            cmd=("run", "--liveness-port", "8080"),
        ),
    ]
    return {spec.name: write_archive(spec, directory / f"{i}.tar") for i, spec in enumerate(specs)}


def base_runtime_spec(ctr: str, path: Path) -> Path:
    """containerd's default OCI spec plus the read-only host mounts every test container gets."""
    spec = json.loads(subprocess.run([ctr, "oci", "spec"], check=True, capture_output=True, text=True).stdout)
    for source in host_mounts():
        spec["mounts"].append(
            {"destination": source, "type": "bind", "source": source, "options": ["rbind", "ro"]}
        )
    spec["mounts"].append(
        {"destination": JOB_WORKDIR, "type": "bind", "source": str(REPO), "options": ["rbind", "ro"]}
    )
    path.write_text(json.dumps(spec, indent=1))
    return path
