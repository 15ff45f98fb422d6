"""Rendering speed of the synthetic generator: audio seconds rendered per wall second.

    python -m bench.synthetic            # 6 tracks of 30 s, stereo, 32 kHz
    python -m bench.synthetic --quick    # 2 tracks of 5 s, for CI
"""
from __future__ import annotations

import argparse
import sys
import time

from bench.common import machine, table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from synthgen_lib.data.synthetic import render_track

    count, seconds = (2, 5.0) if args.quick else (6, 30.0)
    print(f"machine: {machine()}")
    rows = []
    for index in range(count):
        t0 = time.perf_counter()
        track = render_track(0, index, seconds)
        wall = time.perf_counter() - t0
        rows.append([f"synthetic_s0_{index:05d}", f"{seconds:g}", wall, seconds / wall, len(track.stems)])
    print("\nSynthetic generator (stereo, 32 kHz, one process)")
    print(table(["track", "audio s", "wall s", "x realtime", "stems"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
