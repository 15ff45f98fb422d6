"""Both separation families: shapes, output range, and what their designs promise."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from synthgen_lib.models import CheckpointError, SynthEncoder, SynthEncoderConfig, SynthLSTM, SynthLSTMConfig, build_model

TINY = {
    "lstm": lambda: SynthLSTM(SynthLSTMConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32,
                                              hidden_size=32, num_layers=1)),
    "encoder": lambda: SynthEncoder(SynthEncoderConfig(sample_rate=16000, channels=8, depth=3, lstm_layers=1)),
}


@pytest.mark.parametrize("family", TINY)
@pytest.mark.parametrize("shape", [(1, 1, 16000), (2, 2, 12345), (1, 3, 777)])
def test_output_has_the_input_shape(family, shape):
    torch.manual_seed(0)
    model = TINY[family]().eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == shape


def test_lstm_mask_never_adds_energy():
    torch.manual_seed(0)
    model = TINY["lstm"]().eval()
    mix = torch.randn(1, 1, 16000)
    with torch.no_grad():
        mask = model.mask(model.stft(mix[:, 0]))
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
        est = model(mix)
        assert float(model.stft(est[:, 0]).abs().sum()) <= float(model.stft(mix[:, 0]).abs().sum()) * 1.01
        wiener = model(mix, wiener=True)
        assert not torch.allclose(wiener, est)


def test_lstm_loss_is_lowest_at_the_phase_sensitive_mask():
    """The loss is the squared error of the complex estimate, so among masks in [0, 1] the
    phase-sensitive mask clip(Re(S / X), 0, 1) minimises it, below the ratio mask a magnitude
    loss would aim at, and the loss equals the estimate's complex squared error."""
    torch.manual_seed(0)
    model = TINY["lstm"]()
    t = torch.arange(8000) / 16000
    synth = (0.3 * torch.sin(2 * torch.pi * 440 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)))[None, None]
    mix = synth + 0.3 * torch.randn(1, 1, 8000)
    x, s = model.stft(mix[:, 0]), model.stft(synth[:, 0])
    psm = ((s * x.conj()).real / x.abs().square().clamp_min(1e-12)).clamp(0, 1)
    ratio = s.abs() / (s.abs() + (x - s).abs() + 1e-12)

    def loss_with(mask):
        model.mask = lambda spec: mask
        return float(model.loss(mix, synth))

    best = loss_with(psm)
    assert best == pytest.approx(float((psm * x - s).abs().square().mean()), rel=1e-5)
    assert best < loss_with(ratio) * 0.9
    for _ in range(3):
        assert best < loss_with((psm + 0.05 * torch.randn_like(psm)).clamp(0, 1))


def _lstm(**settings) -> SynthLSTM:
    return SynthLSTM(SynthLSTMConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32, hidden_size=32,
                                     num_layers=1, **settings))


def test_lstm_sdr_loss_weighs_every_example_alike_and_asks_silence_of_a_silent_synth():
    """``loss="sdr"`` is each example's negative SDR: the waveform figure (up to the STFT's
    edges), unchanged when one example is made louder (where squared error is dominated by it),
    and for a synth that is silent it is lowest when the mask is."""
    torch.manual_seed(0)
    sdr_model, psa_model = _lstm(loss="sdr").eval(), _lstm().eval()
    psa_model.load_state_dict(sdr_model.state_dict())
    assert SynthLSTMConfig().loss == "psa"
    t = torch.arange(16000) / 16000
    synth = 0.3 * torch.sin(2 * torch.pi * 330 * t).expand(2, 1, -1).clone()
    mix = synth + 0.3 * torch.randn(2, 1, 16000)
    with torch.no_grad():
        loss, estimate = sdr_model.loss(mix, synth, return_estimate=True)
        sdrs = [10 * torch.log10(synth[i].square().sum() / (estimate[i] - synth[i]).square().sum()) for i in range(2)]
        assert float(loss) == pytest.approx(-float(sum(sdrs)) / 2, abs=0.2)
        fixed = torch.rand(sdr_model.mask(sdr_model.stft(mix[:, 0])).shape)  # a level-blind mask
        sdr_model.mask = psa_model.mask = lambda spec: fixed
        loss = sdr_model.loss(mix, synth)
        louder = torch.tensor([30.0, 1.0])[:, None, None]
        assert float(sdr_model.loss(mix * louder, synth * louder)) == pytest.approx(float(loss), abs=1e-3)
        psa = float(psa_model.loss(mix, synth))
        assert float(psa_model.loss(mix * louder, synth * louder)) > 100 * psa
        silent = torch.zeros_like(synth)
        for mask, lowest in ((0.0, True), (0.5, False)):
            sdr_model.mask = lambda spec: torch.full(spec.shape, mask)
            value = float(sdr_model.loss(mix, silent))
            assert (value == pytest.approx(0.0, abs=1e-4)) is lowest and value >= -1e-4
        sdr_model.mask = lambda spec: torch.ones(spec.shape)  # the mix itself: capped at 30 dB, not 100
        assert float(sdr_model.loss(mix, silent)) == pytest.approx(10 * math.log10(1001), abs=0.01)
    with pytest.raises(CheckpointError, match="loss must be one of psa, sdr"):
        build_model("lstm", {"loss": "l1"})


def test_lstm_conv_front_end_sees_neighbouring_bands_and_frames():
    """The front end's maps reach the first linear layer: a change in one mel band of one frame
    moves the first layer's input in neighbouring bands and frames (3 frames either side at the
    dilated layer), which the plain model's input never does."""
    torch.manual_seed(0)
    model = _lstm(conv_channels=4, conv_out=2).eval()
    assert model.fc1.in_features == 32 * 3
    seen = {}
    model.fc1.register_forward_hook(lambda mod, inp, out: seen.__setitem__("x", inp[0].detach().clone()))
    spec = model.stft(torch.randn(1, 8000))
    model.mask(spec)
    before = seen["x"]
    poked = spec.clone()
    poked[:, 20, 40:48] *= 10  # one frame, the linear bins under a few mel bands
    model.mask(poked)
    moved = (seen["x"] - before).abs().reshape(1, -1, 3, 32)[0]  # (frames, 1 + conv_out, mels)
    assert float(moved[:, 0].sum(-1)[[17, 23]].max()) == 0.0  # the features themselves: only frame 20
    maps = moved[:, 1:].sum((1, 2))
    assert float(maps[17]) > 0 and float(maps[23]) > 0 and float(maps[10]) == 0.0


def test_lstm_grows_a_conv_front_end_from_a_checkpoint_without_one():
    """A checkpoint of the plain model loads into the same model with a front end and computes
    exactly what it did; training then moves both the front end's weights and the new inputs'."""
    torch.manual_seed(0)
    plain = _lstm().eval()
    grown = _lstm(conv_channels=4)
    grown.load_state_dict(plain.state_dict())
    grown.eval()
    mix = torch.randn(1, 2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(grown(mix), plain(mix), rtol=0, atol=1e-6)
    grown.train()
    grown.loss(mix, 0.5 * mix).backward()
    assert float(grown.fc1.weight.grad[:, 32:].abs().sum()) > 0
    grown.fc1.weight.data[:, 32:] += 0.01  # once the new inputs count, the front end learns too
    grown.zero_grad()
    grown.loss(mix, 0.5 * mix).backward()
    assert float(grown.conv[0].weight.grad.abs().sum()) > 0
    # a checkpoint with a front end still loads only into a model with the same one
    with pytest.raises(RuntimeError, match="size mismatch"):
        _lstm(conv_channels=4, conv_out=2).load_state_dict(grown.state_dict())
    with pytest.raises(RuntimeError, match="Unexpected key"):
        _lstm().load_state_dict(grown.state_dict())


def test_lstm_input_stats_normalise_features():
    model = TINY["lstm"]()
    feats = torch.randn(4, 50, 32) * 3 + 7
    model.set_input_stats(feats)
    normed = (feats - model.input_mean) * model.input_scale
    assert normed.mean().abs() < 1e-4 and (normed.reshape(-1, 32).std(0) - 1).abs().max() < 1e-3


def test_encoder_output_is_linear_and_sees_seconds():
    torch.manual_seed(0)
    model = TINY["encoder"]().eval()
    x = torch.randn(1, 1, 16000 * 4)
    last = model.decoder[-1][-1]
    assert isinstance(last, torch.nn.ConvTranspose1d)  # linear output: no sigmoid/GELU after it
    with torch.no_grad():
        last.bias.zero_()
        y = model(x)
        assert float(y.min()) < 0 < float(y.max())  # a waveform, both signs
        x2 = x.clone()
        x2[..., :1600] = 0  # change only the first 0.1 s
        y2 = model(x2)
    # ...and the output 3 seconds later moves: the receptive field spans seconds (LSTM bottleneck)
    assert (y2[..., 3 * 16000:] - y[..., 3 * 16000:]).abs().max() > 1e-4


def test_encoder_scales_with_its_input():
    torch.manual_seed(0)
    model = TINY["encoder"]().eval()
    x = torch.randn(1, 2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(model(0.1 * x), 0.1 * model(x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", TINY)
def test_loss_can_return_the_estimate_it_scored(family):
    torch.manual_seed(0)
    model = TINY[family]().eval()
    mix, synth = torch.randn(2, 2, 8000), torch.randn(2, 2, 8000)
    with torch.no_grad():
        loss, estimate = model.loss(mix, synth, return_estimate=True)
        torch.testing.assert_close(estimate, model(mix))  # one forward pass serves both
        torch.testing.assert_close(loss, model.loss(mix, synth))


def test_encoder_loss_setting_chooses_plain_l1_or_l1_with_stft_and_refuses_others():
    torch.manual_seed(0)
    make = lambda loss: SynthEncoder(SynthEncoderConfig(sample_rate=16000, channels=8, depth=3, lstm_layers=1,
                                                        loss=loss)).eval()
    assert SynthEncoderConfig().loss == "l1"  # the default since the paired three-seed rerun
    plain, stft = make("l1"), make("l1+stft")
    stft.load_state_dict(plain.state_dict())
    mix, synth = torch.randn(2, 2, 8000), 0.1 * torch.randn(2, 2, 8000)
    with torch.no_grad():
        l1 = plain.loss(mix, synth)
        torch.testing.assert_close(l1, torch.nn.functional.l1_loss(plain(mix), synth))
        # "l1+stft" divides L1 by the target's level and adds the STFT terms: a different value
        assert float(stft.loss(mix, synth)) > 2 * float(l1)
    with pytest.raises(CheckpointError, match="loss must be one of l1, l1\\+stft"):
        build_model("encoder", {"loss": "l2"})


def test_the_model_package_reads_no_dataset_code():
    """models/ stands below data/: no module of the model package imports synthgen_lib.data
    (the tiny SynthGen calibrates its codec on audio it makes itself)."""
    import ast

    import synthgen_lib.models as package

    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert not target.startswith(("..data", "synthgen_lib.data")), f"{path.name} imports {target}"
