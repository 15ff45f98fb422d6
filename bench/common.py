"""Helpers for the benchmark scripts: run a measurement in a fresh process, time training steps,
print tables."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time


def timed_steps(loss_of, opt, steps: int, device: str, dtype, peak_after_warmup: bool = False) -> tuple[float, float]:
    """``steps + 1`` optimizer steps of ``loss_of(i)`` (the loss of step ``i``), on a GPU under
    autocast in ``dtype`` with a gradient scaler for float16, as ``synthgen train`` runs them; the
    first is not timed (it allocates the optimizer state and warms up kernels). Returns the
    seconds per timed step and the last loss. ``peak_after_warmup``: the GPU's peak memory counts
    from the second step on.
    """
    import torch

    cuda = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and dtype == torch.float16)
    for i in range(steps + 1):
        if i == 1:
            if cuda:
                torch.cuda.synchronize()
                if peak_after_warmup:
                    torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
        with torch.autocast("cuda" if cuda else "cpu", dtype=dtype, enabled=cuda):
            loss = loss_of(i)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps, loss.item()


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
