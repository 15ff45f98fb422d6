"""The Generate panel's press on a CPU: wall seconds per minute of audio (model load, separation,
24-bit stems, stems.zip, MP3 players and spectrograms) and the size of what it puts in the
notebook, for the bundled models.

    python -m bench.panel            # 1- and 3-minute stereo 44.1 kHz inputs
    python -m bench.panel --quick    # a 10-second input, for CI
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import numpy as np
    import soundfile as sf

    from synthgen_lib.notebook import GeneratePanel

    lengths = (10,) if args.quick else (60, 180)
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = {}
        for seconds in lengths:  # noise: the hardest case for the MP3 previews' size
            path = root / f"noise{seconds}.wav"
            sf.write(path, (np.random.default_rng(0).standard_normal((seconds * 44100, 2)) * 0.1).astype("float32"),
                     44100)
            inputs[path.stem] = path
        panel = GeneratePanel(root / "project", inputs)
        for model in ("synthlstm-demo", "synthencoder-demo"):
            panel.model.value = model
            for seconds, path in zip(lengths, inputs.values()):
                panel.source.value = path
                t0 = time.perf_counter()
                if panel.generate() is None:
                    raise SystemExit(f"{model}: {panel.status.value}")
                wall = time.perf_counter() - t0
                shown = sum(len(o.get("data", {}).get("text/html", "")) for o in panel.output.outputs)
                rows.append([model, seconds, wall, wall * 60 / seconds, shown / 1e6])
    print("\nGenerate panel, one press (first press of a model includes loading it)")
    print(table(["model", "audio s", "wall s", "s per audio minute", "output MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
