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


def cpu_by_group() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of this machine, by group: "app"
    (gunicorn), "postgres", "bench" (this process), "other". Take two and subtract to see where a phase's
    CPU went (a process that ended in between is not counted)."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    out = {"app": 0.0, "postgres": 0.0, "bench": 0.0, "other": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if int(entry.name) == me:
            group = "bench"
        elif b"gunicorn" in cmdline:
            group = "app"
        elif comm == "postgres" or cmdline.startswith(b"postgres"):
            group = "postgres"
        else:
            group = "other"
        out[group] += seconds
    return out


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
