"""SynthMatch against random database segments, on held-out synthetic tracks.

    python -m bench.synthmatch              # 200 training steps (about a minute on 2 CPU cores)
    python -m bench.synthmatch --steps 1000 --seed 1
    python -m bench.synthmatch --quick      # a few steps, for CI

Trains SynthMatch with the shared loop (the default config: LSTM, 32 kHz, a 2048-segment
database from 128 training examples), then scores on the held-out tracks' 10 s windows, by
median log-mel distance (LMD, dB, lower is better) and SI-SDR: SynthMatch; the same model
picking random database segments (same gain matching and cross-fades: the baseline); the
database queried with the true synth's descriptors (what a perfect predictor would reach);
the mix itself; and the oracle ratio mask.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from bench.common import machine, table


def main(argv=None) -> int:
    from synthgen_lib.data import make_windows
    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.evaluate import MethodScores, evaluate, log_mel_distance
    from synthgen_lib.models import load_model
    from synthgen_lib.train import TrainConfig, train

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200, help="training steps (batches of 8 x 4 s)")
    parser.add_argument("--tracks", type=int, default=24, help="synthetic tracks of 20 s (a fifth held out)")
    parser.add_argument("--arch", default="lstm", choices=("lstm", "transformer"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    overrides = {"arch": args.arch}
    if args.quick:
        args.steps, args.tracks = 4, 6
        overrides.update(hidden_size=32, num_layers=1, database_examples=8)
    print(f"machine: {machine()}")
    source = SyntheticSource(num_tracks=args.tracks, seed=args.seed, track_duration=20.0, cache=args.tracks)
    epochs = max(1, args.steps // 25)
    cfg = TrainConfig(model="synthmatch", epochs=epochs, steps_per_epoch=args.steps // epochs, batch_size=8,
                      segment=4.0, valid_fraction=0.2, seed=args.seed)
    with tempfile.TemporaryDirectory() as out:
        model = load_model(train(source, out, cfg, overrides, progress=False).best)
    report = evaluate({"SynthMatch": model, "random segments": model.with_retrieval("random")}, source,
                      valid_fraction=0.2, seed=args.seed)
    ceiling = MethodScores()
    for w in make_windows(source.tracks(), 10.0, 5.0, 0.2, args.seed).of("valid"):
        audio = source.load(w.track, model.config.sample_rate, 2, w.start, w.length)
        if audio.synth.pow(2).mean().sqrt() >= 1e-3:  # the windows evaluate scores
            rebuilt = model.reconstruct(audio.synth[None])[0]
            ceiling.window_lmd.append(float(log_mel_distance(rebuilt, audio.synth, model.config.sample_rate).mean()))
    found = report.methods
    methods = {"SynthMatch": found["SynthMatch"], "random segments": found["random segments"],
               "database, true descriptors": ceiling, "mix": found["mix"], "oracle mask": found["oracle"]}
    rows = []
    for name, scores in methods.items():
        s = scores.summary()
        si = f"{s['si_sdr_median']:.2f}" if scores.window_si_sdr else "-"
        rows.append([name, len(scores.window_lmd), f"{s['lmd_median']:.2f}", si])
    params = sum(p.numel() for p in model.parameters())
    print(f"\nHeld-out windows after {cfg.epochs * cfg.steps_per_epoch} steps ({args.arch}, {params / 1e6:.2f}M "
          f"parameters, database of {len(model.db_keys)} segments); {args.tracks} synthetic tracks, seed {args.seed}")
    print(table(["method", "windows", "LMD median (dB)", "SI-SDR median (dB)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
