"""Training throughput per model family: training examples (segments) per second.

    python -m bench.training            # the bundled demo recipes, 20 steps each
    python -m bench.training --quick    # 3 steps each, for CI

Uses the same SegmentDataset, model loss and optimizer step as `synthgen train`, on a small
synthetic set held in memory. Each family is measured on the CPU and, when one is present, on
the GPU (with its peak allocated memory; the CPU rows leave that column as "-"), where the step
runs in mixed precision as `synthgen train`'s does (bf16 where the GPU has it natively, else fp16
with a gradient scaler). `--device cuda` measures the GPU alone.
"""
from __future__ import annotations

import argparse
import sys

from bench.common import machine, table, timed_steps

RECIPES = {  # the settings of `make demo-models`
    "lstm": ({}, 8, 4.0),
    "encoder": ({"channels": 16, "loss": "l1+stft"}, 4, 2.0),
    "synthmatch": ({}, 8, 4.0),
}


def throughput(family: str, steps: int, device: str = "cpu") -> dict:
    import torch

    from synthgen_lib.data import make_windows
    from synthgen_lib.device import amp_dtype
    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.models import build_model
    from synthgen_lib.train import SegmentDataset, TrainConfig

    overrides, batch, segment = RECIPES[family]
    source = SyntheticSource(num_tracks=4, seed=1, track_duration=11.0, cache=4)
    cfg = TrainConfig(model=family, batch_size=batch, segment=segment)
    windows = make_windows(source.tracks(), 10.0, 5.0, 0.0).windows
    data = SegmentDataset(source, windows, cfg, augment=True)
    model = build_model(family, overrides).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [torch.utils.data.default_collate([data[(s * batch + i) % len(data)] for i in range(batch)])
               for s in range(steps + 1)]
    cuda = device.startswith("cuda")
    amp = amp_dtype(device) if cuda else torch.float16  # as Trainer.build

    def loss_of(i):
        mix, synth = batches[i]
        return model.loss(mix.to(device, non_blocking=True), synth.to(device, non_blocking=True))

    step_s, _ = timed_steps(loss_of, opt, steps, device, amp, peak_after_warmup=True)
    wall = step_s * steps
    return {"family": family, "device": device, "batch": batch, "segment": segment, "step_s": wall / steps,
            "examples_per_s": steps * batch / wall, "audio_x": steps * batch * segment / wall,
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "precision": str(amp).replace("torch.", "") if cuda else "fp32"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append",
                        help="where to measure (default: the CPU, and the GPU when there is one)")
    parser.add_argument("--steps", type=int, help="timed steps per family (default 20; 3 with --quick)")
    args = parser.parse_args(argv)
    import torch

    print(f"machine: {machine()}")
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        print("--device cuda: no GPU on this machine", file=sys.stderr)
        return 2
    rows = []
    for device in devices:
        for family in RECIPES:
            r = throughput(family, args.steps or (3 if args.quick else 20), device)
            peak = "-" if r["gpu_peak_mb"] is None else f"{r['gpu_peak_mb']:.0f}"
            rows.append([family, f"{device} {r['precision']}", r["batch"], f"{r['segment']:g}", r["step_s"], r["examples_per_s"],
                         r["audio_x"], peak])
    print("\nTraining throughput (forward + backward + AdamW step, stereo segments at 32 kHz)")
    print(table(["family", "device", "batch", "segment s", "s per step", "examples per s", "audio s per wall s",
                 "GPU peak MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
