"""Where a result came from: versions of everything that computed it, the code's git commit,
the machine. Stored with every run and every leaderboard entry."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import jmedbench


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the source tree jmedbench runs from (with ``+dirty``), or None."""
    where = path or Path(jmedbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_provenance(registry: Any, name: str, backend: str = "torch") -> dict[str, Any]:
    """Which plugin registered the run's model and the versions of the libraries whose code
    builds it (``ModelSpec.libraries``): a library's release can change the network."""
    spec = registry.model(name, backend)
    return {"name": name, "plugin": registry.owner("models", name, backend),
            "libraries": {dist: _version(dist) for dist in spec.libraries}}


def collect(registry: Any = None) -> dict[str, Any]:
    versions = {name: _version(name) for name in
                ("jmedbench", "torch", "torchvision", "timm", "numpy", "scipy", "pluggy",
                 "optuna", "jittor")}
    versions["python"] = platform.python_version()
    plugins = {}
    if registry is not None:
        for info in registry.plugins.values():
            plugins[info.name] = {"module": info.module, "distribution": info.distribution,
                                  "version": info.version, "status": info.status}
    try:
        import torch
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a core dependency
        threads = None
    return {
        "versions": {k: v for k, v in versions.items() if v is not None},
        "plugins": plugins,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "pid": os.getpid(),
    }
