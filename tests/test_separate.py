from __future__ import annotations

import pytest
import torch
from torch import nn

from synthgen_lib.models import SynthLSTM, SynthLSTMConfig
from synthgen_lib.separate import overlap_add, separate


class Identity(nn.Module):
    family = "identity"

    def __init__(self, rate=32000):
        super().__init__()
        self.config = type("C", (), {"sample_rate": rate})()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return x


@pytest.mark.parametrize("n, segment, overlap", [(10000, 1000, 0.25), (999, 1000, 0.5), (12345, 777, 0.0),
                                                  (5000, 5000, 0.25)])
def test_overlap_add_of_identity_reproduces_the_input(n, segment, overlap):
    x = torch.randn(2, n)
    torch.testing.assert_close(overlap_add(lambda c: c, x, segment, overlap, batch_size=3), x)


def test_cross_fades_blend_neighbouring_segments():
    x = torch.zeros(1, 4000)
    y = overlap_add(lambda c: torch.ones_like(c) * torch.arange(len(c))[:, None, None], x, 1000, 0.5, batch_size=16)
    seam = y[0, 500:1000]  # where segment 0 (value 0) fades into segment 1 (value 1)
    assert float(seam[0]) < 0.05 and float(seam[-1]) > 0.95 and bool((seam[1:] >= seam[:-1]).all())


def test_odd_length_rate_and_channels_are_kept():
    torch.manual_seed(0)
    mix = torch.randn(2, int(3.7 * 44100)) * 0.1
    model = Identity()
    out = separate(mix, model, sample_rate=44100, segment=1.0, batch_size=2)
    assert out.synth.shape == mix.shape and out.sample_rate == 44100
    assert all(shape == (2, 2, 32000) or shape[0] < 2 for shape in model.calls)  # batched
    torch.testing.assert_close(out.synth + out.residual, mix)
    # identity through resampling 44.1k -> 32k -> 44.1k keeps the band below 16 kHz
    lowpassed = separate(mix, Identity(44100), sample_rate=44100, segment=1.0).synth
    torch.testing.assert_close(lowpassed, mix)


def test_real_model_on_mono_tensor():
    model = SynthLSTM(SynthLSTMConfig(n_fft=256, hop_length=64, n_mels=16, hidden_size=16, num_layers=1)).eval()
    mix = torch.randn(32000 + 17)
    out = separate(mix, model, segment=0.5)
    assert out.synth.shape == mix.shape
    torch.testing.assert_close(out.synth + out.residual, mix)


def test_long_files_are_separated_in_bounded_blocks(tmp_path, monkeypatch):
    import numpy as np

    import synthgen_lib.separate as module
    import soundfile as sf

    from synthgen_lib.separate import separate_files

    from .conftest import write

    rate = 8000
    rng = np.random.default_rng(0)
    mix = (rng.uniform(-0.5, 0.5, (2, 95 * rate))).astype(np.float32)  # 95 s "long" file
    write(tmp_path / "long.wav", mix, rate, "FLOAT")

    class Half(Identity):
        def forward(self, x):
            self.calls.append(tuple(x.shape))
            return 0.5 * x

    model = Half(rate)
    seen = []

    def spy(mix, *args, **kwargs):
        seen.append(mix.shape[-1])
        return separate(mix, *args, **kwargs)

    monkeypatch.setattr(module, "separate", spy)
    [(_, folder)] = list(separate_files([tmp_path / "long.wav"], model, tmp_path / "out", bits=32,
                                        block=20.0, context=2.0, segment=4.0))
    synth = sf.read(str(folder / "synth.wav"), always_2d=True)[0].T
    residual = sf.read(str(folder / "residual.wav"), always_2d=True)[0].T
    assert synth.shape == mix.shape
    np.testing.assert_allclose(synth, 0.5 * mix, atol=1e-6)  # seams between blocks are invisible
    np.testing.assert_allclose(synth + residual, mix, atol=1e-6)
    # only one block plus its context was ever in memory, never the whole file
    assert len(seen) == 5 and max(seen) == (20 + 2 * 2) * rate
