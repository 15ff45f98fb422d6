"""Helpers for the benchmark scripts: run a measurement in a fresh process, print tables."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time


def in_subprocess(module: str, *args: str) -> dict:
    """Run ``python -m module args`` and return the JSON it prints last (own process, so its
    peak memory is its own)."""
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{time.strftime('%Y-%m-%d')}, {cpu}, {threads} torch threads, {gpu}, torch {torch.__version__}"


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
