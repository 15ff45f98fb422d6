"""Rendering speed of the synthetic generator, and of the production chain on its tracks
(:mod:`synthgen_lib.data.production`, every effect on and an MP3 round trip: the slowest chain):
audio seconds per wall second.

    python -m bench.synthetic            # 6 tracks of 30 s, stereo, 32 kHz
    python -m bench.synthetic --quick    # 2 tracks of 5 s, for CI
"""
from __future__ import annotations

import argparse
import sys
import time

from bench.common import machine, table


def _every_effect():
    """A channel strip with every effect on: the slowest a stem can take."""
    from synthgen_lib.data.production import Compressor, Filter, Room, StemChain

    return StemChain((Filter("lowshelf", 150, 3.0), Filter("peak", 1000, -3.0, 1.0), Filter("highshelf", 8000, 2.0)),
                     6.0, Compressor(-3.0, 3.0, 0.01, 0.1), Room(1.5, 0.2, 0.01, 0.3, 0), 1.2, 1.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from synthgen_lib.data.production import Compressor, Limiter, Production, produce, production_names
    from synthgen_lib.data.synthetic import render_track

    every = _every_effect()
    count, seconds = (2, 5.0) if args.quick else (6, 30.0)
    print(f"machine: {machine()}")
    rows = []
    for index in range(count):
        t0 = time.perf_counter()
        track = render_track(0, index, seconds)
        wall = time.perf_counter() - t0
        names = production_names(list(track.stems), len(track.parts))
        chain = Production({k: every for k in names}, Compressor(-5.0, 2.0, 0.01, 0.2),
                           Limiter(4.0, -0.3, 0.005, 0.1), 320)
        t0 = time.perf_counter()
        produce(track.stems, track.parts, 32_000, chain)
        chain_wall = time.perf_counter() - t0
        rows.append([f"synthetic_s0_{index:05d}", f"{seconds:g}", wall, seconds / wall, len(track.stems),
                     chain_wall, seconds / chain_wall])
    print("\nSynthetic generator and production chain (stereo, 32 kHz, one process)")
    print(table(["track", "audio s", "wall s", "x realtime", "stems", "chain wall s", "chain x realtime"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
