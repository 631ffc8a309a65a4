"""What a benchmark ran on, printed with its figures (a figure without its machine means little)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine() -> dict:
    """Platform, CPU model, cores this process may use, Python version, load average now."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "cpu": cpu_model(), "nproc": nproc,
            "python": platform.python_version(), "load_avg": tuple(round(x, 2) for x in os.getloadavg())}


def describe() -> str:
    m = machine()
    return f"{m['platform']} | {m['cpu']} | nproc {m['nproc']} | Python {m['python']} | load {m['load_avg']}"
