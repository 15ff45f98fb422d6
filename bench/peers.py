"""Quality at equal budget against the peers' architectures, measured side by side.

    python -m bench.peers                 # 4 minutes of training per model on this machine
    python -m bench.peers --minutes 10
    python -m bench.peers --quick         # a few seconds each, for CI

SynthLSTM is set against Open-Unmix's model class (``openunmix.model.OpenUnmix``: a BiLSTM on
magnitude spectrograms, trained with MSE on magnitudes, as in its own recipe), SynthEncoder
against Demucs's waveform model class (``demucs.demucs.Demucs``: the v2/v3 waveform U-Net,
trained with L1, as in its recipe). All four train on the same synthetic tracks, with the
same crops, augmentations and batch order (our SegmentDataset, seeded), the same optimizer
and schedule (AdamW, lr 1e-3; ``synthgen train``'s warm-up and cosine decay, the decay spread
over the wall-clock budget so each model ends its budget at the low learning rate, where its
weights have settled instead of wherever a constant rate left them), the same CPU threads and
the same wall-clock budget (every track is rendered before the first clock starts, so the
first contender does not pay for it); then each
separates the same held-out tracks with the same windowed inference and is scored by the same
code (median SI-SDR over 10 s windows), next to the mix itself and the oracle ratio mask. The peers' classes
are used as published (``pip install --no-deps openunmix==1.3.0 demucs==4.1.0 julius``); the
STFT/iSTFT around Open-Unmix is ours (mix phase, no Wiener), as its Separator would add it.
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


def contenders() -> dict:
    from synthgen_lib.models import build_model

    return {  # ours at the bundled demo recipes; the peers at comparable CPU sizes
        "SynthLSTM": (lambda: build_model("lstm", {"sample_rate": RATE}), 8, 4.0),
        "Open-Unmix": (lambda: OpenUnmixPeer(), 8, 4.0),
        "SynthEncoder": (lambda: build_model("encoder", {"channels": 16, "sample_rate": RATE}), 4, 2.0),
        "Demucs (v2 waveform)": (lambda: DemucsPeer(), 4, 2.0),
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
    while (elapsed := time.perf_counter() - start) < seconds:
        for group in opt.param_groups:  # `synthgen train`'s schedule, its decay spread over the budget
            group["lr"] = cfg.lr * lr_factor(cfg, steps, elapsed / seconds)
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


def main(argv=None) -> int:
    from synthgen_lib.data import make_windows
    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.evaluate import evaluate

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model")
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.tracks = 0.05, 6
    print(f"machine: {machine()}")
    source = SyntheticSource(num_tracks=args.tracks, seed=args.seed, track_duration=20.0, cache=args.tracks)
    ws = make_windows(source.tracks(), 10.0, 5.0, 0.2, args.seed)
    for info in source.tracks():  # render every track now, so no contender's budget pays for it
        source.render(info.name, RATE)
    trained, steps = {}, {}
    for name, (make, batch, segment) in contenders().items():
        trained[name], steps[name] = train_for(make, batch, segment, args.minutes * 60, source, ws.of("train"),
                                               args.seed)
    report = evaluate(trained, source, split="valid", valid_fraction=0.2, seed=args.seed)
    rows = []
    for name, scores in report.methods.items():
        si = torch.tensor(scores.window_si_sdr)
        params = sum(p.numel() for p in trained[name].parameters()) if name in trained else 0
        rows.append([name, f"{params / 1e6:.2f}M" if params else "-", steps.get(name, "-"), len(si),
                     f"{float(si.median()):.2f}", f"{float(si.mean()):.2f}"])
    print(f"\nValidation SI-SDR (dB) after {args.minutes:g} min of training each on {torch.get_num_threads()} "
          f"threads; {args.tracks} synthetic tracks of 20 s, seed {args.seed}, "
          f"{len({w.track for w in ws.of('valid')})} held out")
    print(table(["model", "params", "steps", "windows", "SI-SDR median", "SI-SDR mean"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
