"""Where a number came from: code version, library versions, hardware."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from nskernel import Device

REPO = Path(__file__).resolve().parent.parent
LIBRARIES = ("torch", "numpy", "scipy", "neuraloperator", "deepxde", "h5py", "pandas", "pyamg", "scikit-sparse")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD commit, with ``+dirty`` when the work tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name(device: str) -> str | None:
    if not Device(device).is_cuda:
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def provenance(device: str, threads: int) -> dict[str, Any]:
    return {
        "git_commit": git_commit(),
        "versions": library_versions(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "gpu": gpu_name(device),
        "device": device,
        "threads": threads,
    }
