"""generate.py: SynthGen over whole mixes (windows continued from each other), and remix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgen_lib.errors import SynthGenError
from synthgen_lib.generate import generate, load_synthgen, remix
from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig
from tests.conftest import TINY_SYNTHGEN


@pytest.fixture(scope="module")
def model():
    return SynthGen(SynthGenConfig(**TINY_SYNTHGEN)).eval()


def _mix(seconds=25.0, sr=44100, channels=2):
    torch.manual_seed(0)
    return 0.1 * torch.randn(channels, int(seconds * sr))


def test_a_25_second_mix_gets_a_synth_of_its_exact_length_rate_and_channels(model):
    mix = _mix()
    out = generate(mix, "bright saw lead", model, 44100, window=4.0, overlap=1.0, top_k=20)
    assert out.synth.shape == mix.shape and out.sample_rate == 44100
    assert torch.isfinite(out.synth).all() and out.synth.abs().max() > 0
    assert torch.equal(out.synth[0], out.synth[1])  # MusicGen is mono: the same line on both channels
    assert out.description == "bright saw lead"
    mono = generate(mix[0, :12345], None, model, 44100, window=4.0, top_k=20)
    assert mono.synth.shape == (12345,) and mono.description == model.config.default_description


def test_same_seed_same_stem_other_seed_other_stem(model):
    mix = _mix(6.0, 16000, 1)
    a = generate(mix, "pad", model, 16000, window=4.0, seed=3, top_k=20)
    b = generate(mix, "pad", model, 16000, window=4.0, seed=3, top_k=20)
    c = generate(mix, "pad", model, 16000, window=4.0, seed=4, top_k=20)
    assert torch.equal(a.synth, b.synth)
    assert not torch.equal(a.synth, c.synth)


def test_each_window_continues_from_the_tail_of_the_previous_one(model, monkeypatch):
    calls = []
    original = model.generate_codes

    def spy(mix_codes, chroma, description, prompt=None, **kw):
        out = original(mix_codes, chroma, description, prompt, **kw)
        calls.append((mix_codes.shape[-1], None if prompt is None else prompt.clone(), out.clone()))
        return out

    monkeypatch.setattr(model, "generate_codes", spy)
    generate(_mix(10.0, 16000, 1), "pad", model, 16000, window=4.0, overlap=1.0, top_k=20)
    keep = int(1.0 * model.frame_rate)
    assert len(calls) == 3 and calls[0][1] is None
    for (_, _, before), (_, prompt, after) in zip(calls, calls[1:]):
        assert torch.equal(prompt, before[..., -keep:])  # the prompt is the previous window's end
        assert torch.equal(after[..., :keep], prompt)  # and the new window starts with it unchanged


def test_sampling_knobs_are_applied(model):
    mix = _mix(4.0, 16000, 1)
    greedy = [generate(mix, "pad", model, 16000, use_sampling=False, seed=s).synth for s in (1, 2)]
    assert torch.equal(greedy[0], greedy[1])  # no sampling: the seed does not matter
    nucleus = [generate(mix, "pad", model, 16000, top_p=0.9, temperature=1.5, seed=s).synth for s in (1, 2)]
    assert not torch.equal(nucleus[0], nucleus[1])


def test_remix_replaces_the_synth(model):
    mix = _mix(5.0, 44100, 2)
    out = remix(mix, "pluck", model, 44100, window=4.0, top_k=20)
    assert out.remixed.shape == out.synth.shape == out.removed.shape == mix.shape
    assert torch.allclose(out.remixed, mix - out.removed + out.synth, atol=1e-5)


def test_wrong_models_and_empty_mixes_get_clear_errors(model):
    from synthgen_lib.models import build_model

    with pytest.raises(SynthGenError, match="SynthLSTM isolates the synth stem of a mix and cannot generate a synth "
                       "stem — use 'synthgen separate' with it"):
        load_synthgen(build_model("lstm", {"hidden_size": 8, "num_layers": 1}))
    with pytest.raises(SynthGenError, match="empty"):
        generate(torch.zeros(2, 0), "pad", model, 16000)


def test_a_primer_is_continued_and_kept_unchanged(model, monkeypatch):
    sr = 22050
    primer = 0.3 * torch.sin(torch.arange(int(1.5 * sr)) / sr * 2 * torch.pi * 440).repeat(2, 1)
    mix = _mix(9.0, sr, 2)
    prompts = []
    original = model.generate_codes

    def spy(mix_codes, chroma, description, prompt=None, **kw):
        prompts.append(None if prompt is None else prompt.shape[-1])
        return original(mix_codes, chroma, description, prompt, **kw)

    monkeypatch.setattr(model, "generate_codes", spy)
    out = generate(mix, "pad", model, sr, window=4.0, overlap=1.0, primer=primer, top_k=20)
    assert out.synth.shape == mix.shape
    assert torch.equal(out.synth[:, : primer.shape[-1]], primer)  # starts with the primer, unchanged
    assert prompts[0] == int(np.ceil(1.5 * model.frame_rate))  # the first window continues the primer's tokens
    assert out.synth[:, primer.shape[-1]:].abs().max() > 0  # and goes on


def test_what_is_generated_follows_the_mix_tokens(monkeypatch):
    """Another mix, the same seed: another stem (chroma off, so only the mix tokens carry the
    mix); and the tokens each window is conditioned on are the mix's own."""
    net = SynthGen(SynthGenConfig(**{**TINY_SYNTHGEN, "use_chroma": False})).eval()
    mix = _mix(6.0, 16000, 1)
    other = 0.1 * torch.randn(1, 6 * 16000, generator=torch.Generator().manual_seed(9))
    a = generate(mix, "pad", net, 16000, window=4.0, seed=3, top_k=20)
    b = generate(other, "pad", net, 16000, window=4.0, seed=3, top_k=20)
    assert not torch.equal(a.synth, b.synth)
    seen = []
    original = net.generate_codes

    def spy(mix_codes, *args, **kwargs):
        seen.append(mix_codes.clone())
        return original(mix_codes, *args, **kwargs)
    monkeypatch.setattr(net, "generate_codes", spy)
    generate(mix, "pad", net, 16000, window=4.0, seed=3, top_k=20)
    frames = seen[0].shape[-1]
    hop = round(net.sample_rate / net.frame_rate)
    with torch.no_grad():
        own = net.encode_audio(mix[None, :, : frames * hop])
    assert torch.equal(seen[0], own[..., :frames]) and seen[0].any()
