"""What a mask can reach when a description asks for one synth part: the ceilings of query accuracy.

    python -m bench.queries --train outputs/q-train --heldout outputs/q-heldout-procedural outputs/q-heldout-fluidr3
    python -m bench.queries --quick       # a few procedural tracks rendered on the fly, for CI

Query accuracy (as ``synthgen evaluate --query-accuracy`` scores it) is the SI-SDR of the answer
against the part asked for minus its SI-SDR against the other part, per 10 s window of held-out
tracks with two synth parts. Nothing here is trained; each row knows something a model would
have to learn:

- ``oracle ratio mask``: the part's ideal ratio mask on the mix's STFT (2048/512, SynthLSTM's
  resolution): the ceiling of any mask at that resolution;
- ``oracle static gain``: one gain per frequency bin for the whole track, the part's energy
  over the mix's: how far the part's register alone, known exactly, tells it from the rest;
- ``description's static gain``, on the true synth and on the mix: one gain per bin for each
  description's roles and register ("pad", "low register"), the mean log share of such parts
  in the ``--train`` tracks: what a query can do by weighting frequencies alone, on top of a
  perfect all-synth separator or of none.

Rows that stay far below the 6 dB bar show that telling parts apart needs time-varying masks
(which notes belong to which part), not a frequency weighting per description.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys

from bench.common import machine, table

N_FFT, HOP = 2048, 512


def _spec(audio):
    import torch

    return torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


def _apply(mix, gain):
    """``mix`` ``(channels, samples)`` through a per-bin ``gain`` ``(bins,)``."""
    import torch

    return torch.istft(_spec(mix) * gain[None, :, None], N_FFT, HOP, window=torch.hann_window(N_FFT),
                       length=mix.shape[-1])


def description_key(description: str) -> tuple[frozenset, str]:
    """The roles a description names and its register word (``low``/``mid``/``high``, or ``""``)."""
    from synthgen_lib.data.queries import roles_named

    register = re.search(r"\b(low|mid|high) register", description)
    return roles_named(description), register.group(1) if register else ""


def two_part_tracks(source, max_tracks: int | None):
    return [t for t in source.tracks() if len(t.parts) >= 2][:max_tracks]


def description_gains(source, rate: int, max_tracks: int | None) -> dict:
    """Per description key, the mean log share ``(bins,)`` of such parts in two-part tracks' synth."""
    import torch

    shares: dict[tuple, list] = {}
    for info in two_part_tracks(source, max_tracks):
        audio = source.load(info.name, rate, 1)
        power = [_spec(audio.parts[p.name][0]).abs().pow(2).mean(-1) for p in info.parts]
        total = sum(power) + 1e-10
        for part, p in zip(info.parts, power):
            shares.setdefault(description_key(part.description), []).append(torch.log(p / total + 1e-4))
    return {k: torch.stack(v).mean(0) for k, v in shares.items()}


def _lookup(gains: dict, key: tuple):
    """The gain of ``key``, or the mean of those with the same roles, or ``None``."""
    import torch

    if key in gains:
        return gains[key]
    same = [g for (roles, _), g in gains.items() if roles == key[0]]
    return torch.stack(same).mean(0) if same else None


def ceilings(source, gains: dict, rate: int, max_tracks: int | None) -> dict[str, list[float]]:
    """Query accuracy (dB, per window) of each ceiling on ``source``'s two-part tracks."""
    from synthgen_lib.data import make_windows
    from synthgen_lib.evaluate import oracle_mask, part_accuracy

    infos = two_part_tracks(source, max_tracks)
    windows = make_windows(infos).windows
    rows: dict[str, list[float]] = {}
    for info in infos:
        audio = source.load(info.name, rate, 2)
        parts = [audio.parts[p.name] for p in info.parts]
        synth = sum(parts)
        mix_power = _spec(audio.mix).abs().pow(2).mean((0, -1)) + 1e-10
        track_windows = [w for w in windows if w.track == info.name]
        for k, part in enumerate(info.parts):
            static = (_spec(parts[k]).abs().pow(2).mean((0, -1)) / mix_power).sqrt().clamp(max=1)
            answers = {"oracle ratio mask": oracle_mask(audio.mix, parts[k]),
                       "oracle static gain": _apply(audio.mix, static)}
            learnt = _lookup(gains, description_key(part.description))
            if learnt is not None:
                gain = learnt.exp().sqrt().clamp(max=1)
                answers["description's static gain, true synth"] = _apply(synth, gain)
                answers["description's static gain, mix"] = _apply(audio.mix, gain)
            for name, answer in answers.items():
                rows.setdefault(name, []).extend(part_accuracy(answer, parts, k, track_windows, rate))
    return rows


def main(argv=None) -> int:
    import torch

    from synthgen_lib.data import FolderSource
    from synthgen_lib.data.synthetic import SyntheticSource

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", help="folder dataset the description gains are learnt from")
    parser.add_argument("--heldout", nargs="+", default=[], help="folder datasets to score on")
    parser.add_argument("--max-tracks", type=int, default=40, help="two-part tracks read from each folder")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rate = 32000
    if args.quick:
        train = SyntheticSource(24, seed=5, track_duration=12)
        heldout = {"procedural, seed 6 (quick)": SyntheticSource(24, seed=6, track_duration=12)}
        args.max_tracks = 4
    elif args.train and args.heldout:
        train = FolderSource(args.train)
        heldout = {root: FolderSource(root) for root in args.heldout}
    else:
        parser.error("give --train and --heldout, or --quick")
    gains = description_gains(train, rate, args.max_tracks)
    print(f"machine: {machine()}")
    print(f"description gains from {len(two_part_tracks(train, args.max_tracks))} two-part tracks "
          f"({len(gains)} role/register keys)")
    rows = []
    for name, source in heldout.items():
        for ceiling, values in ceilings(source, gains, rate, args.max_tracks).items():
            rows.append([name, ceiling, len(values), statistics.fmean(values), statistics.median(values)])
    print(table(["held-out set", "answer", "windows", "accuracy mean (dB)", "median (dB)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
