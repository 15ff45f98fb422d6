"""Separation speed, memory and scaling of the bundled models.

    python -m bench.separation            # 3-minute stereo 44.1 kHz mix through each model,
                                          # then 3 / 10 / 30 / 60 min through each, and
                                          # 3 min at rates that share little with 32 kHz
    python -m bench.separation --quick    # 10 s, for CI

Each measurement runs the `synthgen separate` command on a WAV file (streamed in blocks), for
every bundled model, in a process of its own, as a user runs it: wall-clock seconds with the
process's start and the model's loading included, x realtime (audio seconds per wall second)
and the command's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import in_subprocess, machine, table

def bundled_models() -> list[str]:
    """Every bundled model, as ``synthgen models`` lists them."""
    from synthgen_lib.models import list_models

    return [name for name, _, _, present in list_models() if present]


def _make_mix(path: Path, seconds: float, rate: int = 44100) -> None:
    """A stereo 16-bit WAV of ``seconds``: one rendered minute repeated, written a minute at a
    time (an hour-long file never sits in memory)."""
    from synthgen_lib.audio import AudioWriter
    from synthgen_lib.data.synthetic import render_track

    minute = render_track(7, 0, min(seconds, 60.0), rate, 2).mix
    with AudioWriter(path, rate, 2, bits=16) as out:
        left = int(seconds * rate)
        while left > 0:
            out.write(minute[:, :left])
            left -= minute.shape[1]


def measure(model: str, mix: Path, seconds: float) -> dict:
    """Child process: time ``synthgen separate MIX --model MODEL`` as a user runs it, in a
    process of its own (start-up, model loading and writing the stems included); the peak
    memory is that process's."""
    import resource
    import subprocess

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "synthgen_lib.cli", "separate", str(mix), "--model", model,
                        "--output", str(Path(tmp) / "out")], check=True, capture_output=True)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"model": model, "seconds": seconds, "wall": wall, "realtime": seconds / wall,
            "peak_mb": peak, "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 s, one model (CI smoke)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "MIX", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=3, metavar=("MIX", "SECONDS", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make:
        _make_mix(Path(args.make[0]), float(args.make[1]), int(args.make[2]))
        print("{}")
        return 0
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), float(args.child[2]))))
        return 0
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        def mix_of(seconds: float, rate: int = 44100) -> str:
            path = Path(tmp) / f"mix{seconds:g}-{rate}.wav"
            if not path.exists():
                in_subprocess("bench.separation", "--make", str(path), str(seconds), str(rate))
            return str(path)

        models = bundled_models()
        speed = [(m, 10.0 if args.quick else 180.0) for m in (models[:1] if args.quick else models)]
        rows = []
        for model, seconds in speed:
            r = in_subprocess("bench.separation", "--child", model, mix_of(seconds), str(seconds))
            rows.append([model, f"{seconds:g}", r["wall"], r["realtime"], r["peak_mb"]])
        print("\nSeparation speed (stereo 44.1 kHz mix, synthgen separate)")
        print(table(["model", "audio s", "wall s", "x realtime", "peak RAM MB"], rows))
        if not args.quick:
            rows = []
            for model in models:
                for seconds in (180.0, 600.0, 1800.0, 3600.0):
                    r = in_subprocess("bench.separation", "--child", model, mix_of(seconds), str(seconds))
                    rows.append([model, f"{seconds / 60:g}", r["wall"], r["wall"] / seconds * 60, r["peak_mb"]])
            print("\nScaling with track length, stereo 44.1 kHz (time should grow linearly, memory stay flat)")
            print(table(["model", "audio min", "wall s", "wall s per audio min", "peak RAM MB"], rows))
            rows = []
            for model in models:
                for rate in (44100, 22254, 11127, 44101):
                    r = in_subprocess("bench.separation", "--child", model, mix_of(180.0, rate), "180")
                    rows.append([model, f"{rate}", r["wall"], r["realtime"], r["peak_mb"]])
            print("\nSample rates that share little with 32 kHz (3 min stereo; memory should not grow)")
            print(table(["model", "rate Hz", "wall s", "x realtime", "peak RAM MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
