"""Quality at equal budget against the peers' architectures, measured side by side.

    python -m bench.peers                 # 4 minutes of training per model on this machine
    python -m bench.peers --minutes 10
    python -m bench.peers --minutes 8 --seeds 0 1 2   # three runs, then mean and spread per model
    python -m bench.peers --models encoder demucs     # one pair only
    python -m bench.peers --quick         # a few seconds each, for CI

SynthLSTM is set against Open-Unmix's model class (``openunmix.model.OpenUnmix``: a BiLSTM on
magnitude spectrograms, trained with MSE on magnitudes, as in its own recipe), SynthEncoder
against Demucs's waveform model class (``demucs.demucs.Demucs``: the v2/v3 waveform U-Net,
trained with L1, as in its recipe). All four train on the same synthetic tracks, with the same
crops, augmentations and batch order (our SegmentDataset, seeded), the same optimizer and
schedule (AdamW, lr 1e-3; ``synthgen train``'s warm-up and cosine decay, the decay spread over
the wall-clock budget so each model ends its budget at the low learning rate, where its weights
have settled instead of wherever a constant rate left them; as there, the decay starts after the
warm-up steps), the same CPU threads and the same wall-clock budget (every track is rendered
before the first clock starts, so the first contender does not pay for it); then each separates
the same held-out tracks with the same windowed inference and is scored by the same code (median
SI-SDR over 10 s windows), next to the mix itself and the oracle ratio mask. The peers' classes
are used as published (``pip install --no-deps openunmix==1.3.0 demucs==4.1.0 julius``); the
STFT/iSTFT around Open-Unmix is ours (mix phase, no Wiener), as its Separator would add it.

One seed scores 24 windows of 8 held-out tracks, and differences under about 0.5 dB change sign
from one seed to the next. With several ``--seeds`` (each: other tracks, split, initialisation
and batch order) the script ends with each method's median per seed, their mean and standard
deviation, and each of ours against its peer paired by seed, with the number of seeds it wins.
"""
from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace

import torch
from torch import nn

from bench.common import machine, table

RATE = 32000


class OpenUnmixPeer(nn.Module):
    """Open-Unmix's model on our STFT: magnitude in, magnitude out, mix phase back to audio."""

    family = "openunmix"

    def __init__(self, n_fft: int = 2048, hop: int = 512, hidden_size: int = 256):
        super().__init__()
        from openunmix.model import OpenUnmix

        self.n_fft, self.hop = n_fft, hop
        self.net = OpenUnmix(nb_bins=n_fft // 2 + 1, nb_channels=2, hidden_size=hidden_size, nb_layers=3)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.config = SimpleNamespace(sample_rate=RATE)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, F, frames) complex
        b, c, t = x.shape
        spec = torch.stft(x.reshape(b * c, t), self.n_fft, self.hop, window=self.window, return_complex=True)
        return spec.reshape(b, c, *spec.shape[-2:])

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        spec = self._stft(mix)
        mag = self.net(spec.abs())
        est = torch.polar(mag, spec.angle())
        b, c, f, n = est.shape
        out = torch.istft(est.reshape(b * c, f, n), self.n_fft, self.hop, window=self.window, length=mix.shape[-1])
        return out.reshape(b, c, -1)

    def loss(self, mix: torch.Tensor, synth: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.net(self._stft(mix).abs()), self._stft(synth).abs())


class DemucsPeer(nn.Module):
    """Demucs's waveform model with one source, the synth."""

    family = "demucs"

    def __init__(self, channels: int = 16, depth: int = 5):
        super().__init__()
        from demucs.demucs import Demucs

        self.net = Demucs(sources=["synth"], audio_channels=2, samplerate=RATE, channels=channels, depth=depth)
        self.config = SimpleNamespace(sample_rate=RATE)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.net(mix)[:, 0]

    def loss(self, mix: torch.Tensor, synth: torch.Tensor) -> torch.Tensor:
        return nn.functional.l1_loss(self(mix), synth)


PAIRS = (("lstm", "openunmix"), ("encoder", "demucs"))  # each of ours against its peer


def contenders() -> dict:
    """``key -> (table name, builder, batch size, segment seconds)``."""
    from synthgen_lib.models import build_model

    return {  # ours at the bundled demo recipes; the peers at comparable CPU sizes
        "lstm": ("SynthLSTM", lambda: build_model("lstm", {"sample_rate": RATE}), 8, 4.0),
        "openunmix": ("Open-Unmix", lambda: OpenUnmixPeer(), 8, 4.0),
        "encoder": ("SynthEncoder", lambda: build_model("encoder", {"channels": 16, "sample_rate": RATE}), 4, 2.0),
        "demucs": ("Demucs (v2 waveform)", lambda: DemucsPeer(), 4, 2.0),
    }


def train_for(make, batch: int, segment: float, seconds: float, source, windows, seed: int) -> tuple[nn.Module, int]:
    from synthgen_lib.train import SegmentDataset, TrainConfig, init_from_data, lr_factor

    torch.manual_seed(seed)
    model = make()
    cfg = TrainConfig(batch_size=batch, segment=segment, seed=seed, sample_rate=RATE)
    data = SegmentDataset(source, windows, cfg, augment=True)
    init_from_data(model, data)  # as `synthgen train` does (SynthLSTM's input normalisation)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    model.train()
    steps, start = 0, time.perf_counter()
    decay_from = None  # the cosine decay starts after warm-up, as in `synthgen train`
    while (elapsed := time.perf_counter() - start) < seconds:
        if steps == cfg.warmup_steps:
            decay_from = elapsed
        progress = 0.0 if decay_from is None else (elapsed - decay_from) / max(1e-9, seconds - decay_from)
        for group in opt.param_groups:  # `synthgen train`'s schedule, its decay spread over the budget
            group["lr"] = cfg.lr * lr_factor(cfg, steps, progress)
        data.set_epoch(steps // max(1, len(order) // batch))
        idx = [order[(steps * batch + i) % len(order)] for i in range(batch)]
        mix, synth = torch.utils.data.default_collate([data[i] for i in idx])
        loss = model.loss(mix, synth)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        steps += 1
    return model.eval(), steps


def run_seed(keys: list[str], minutes: float, tracks: int, seed: int) -> dict[str, dict]:
    """Render ``tracks`` synthetic tracks of ``seed``, train each contender for ``minutes`` on
    the training tracks, score all on the held-out ones; prints the table and returns each
    method's window SI-SDR ``name -> {"median", "mean"}`` (mix, oracle and hpss included)."""
    from synthgen_lib.data import make_windows
    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.evaluate import evaluate

    source = SyntheticSource(num_tracks=tracks, seed=seed, track_duration=20.0, cache=tracks)
    ws = make_windows(source.tracks(), 10.0, 5.0, 0.2, seed)
    for info in source.tracks():  # render every track now, so no contender's budget pays for it
        source.render(info.name, RATE)
    trained, steps = {}, {}
    for key in keys:
        name, make, batch, segment = contenders()[key]
        trained[name], steps[name] = train_for(make, batch, segment, minutes * 60, source, ws.of("train"), seed)
    report = evaluate(trained, source, split="valid", valid_fraction=0.2, seed=seed)
    results, rows = {}, []
    for name, scores in report.methods.items():
        si = torch.tensor(scores.window_si_sdr)
        results[name] = {"median": float(si.median()), "mean": float(si.mean())}
        params = sum(p.numel() for p in trained[name].parameters()) if name in trained else 0
        rows.append([name, f"{params / 1e6:.2f}M" if params else "-", steps.get(name, "-"), len(si),
                     f"{results[name]['median']:.2f}", f"{results[name]['mean']:.2f}"])
    print(f"\nValidation SI-SDR (dB) after {minutes:g} min of training each on {torch.get_num_threads()} "
          f"threads; {tracks} synthetic tracks of 20 s, seed {seed}, "
          f"{len({w.track for w in ws.of('valid')})} held out")
    print(table(["model", "params", "steps", "windows", "SI-SDR median", "SI-SDR mean"], rows), flush=True)
    return results


def summary(per_seed: dict[int, dict[str, dict]], keys: list[str]) -> str:
    """Across seeds: each method's median per seed, their mean and spread; then each of ours
    against its peer, seed by seed (the same tracks, so the difference is paired)."""
    seeds = list(per_seed)
    names = list(per_seed[seeds[0]])
    rows = []
    for name in names:
        medians = torch.tensor([per_seed[s][name]["median"] for s in seeds])
        means = torch.tensor([per_seed[s][name]["mean"] for s in seeds])
        rows.append([name, " / ".join(f"{m:.2f}" for m in medians.tolist()), f"{float(medians.mean()):.2f}",
                     f"{float(medians.std()):.2f}", f"{float(means.mean()):.2f}"])
    text = [f"\nAcross seeds {', '.join(map(str, seeds))}: SI-SDR median per seed, their mean and standard deviation",
            table(["model", "median per seed", "mean of medians", "sd", "mean of means"], rows)]
    pairs = []
    for ours, peer in PAIRS:
        if ours in keys and peer in keys:
            a, b = contenders()[ours][0], contenders()[peer][0]
            diff = torch.tensor([per_seed[s][a]["median"] - per_seed[s][b]["median"] for s in seeds])
            diff_mean = torch.tensor([per_seed[s][a]["mean"] - per_seed[s][b]["mean"] for s in seeds])
            pairs.append([f"{a} - {b}", " / ".join(f"{d:+.2f}" for d in diff.tolist()),
                          f"{float(diff.mean()):+.2f}", f"{float(diff.std()):.2f}",
                          f"{float(diff_mean.mean()):+.2f}", f"{int((diff > 0).sum())} of {len(seeds)}"])
    if pairs:
        text += ["\nOurs against the peer, paired by seed (median difference in dB)",
                 table(["pair", "per seed", "mean", "sd", "mean of means", "ours ahead"], pairs)]
    return "\n".join(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model")
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one full run per seed (other tracks, split, initialisation and batch order)")
    parser.add_argument("--models", nargs="+", choices=list(contenders()), default=list(contenders()),
                        help="which contenders to train (default: all four)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.tracks = 0.05, 6
    print(f"machine: {machine()}")
    keys = [k for k in contenders() if k in args.models]
    per_seed = {seed: run_seed(keys, args.minutes, args.tracks, seed) for seed in dict.fromkeys(args.seeds)}
    if len(per_seed) > 1:
        print(summary(per_seed, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
