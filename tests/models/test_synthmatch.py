"""SynthMatch: descriptors that mean what they say, a database that round-trips, retrieval
that beats random segments once trained."""
from __future__ import annotations

import math

import pytest
import torch

from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.evaluate import evaluate
from synthgen_lib.models import CheckpointError, SynthMatch, SynthMatchConfig, build_model, load_model, save_checkpoint
from synthgen_lib.train import TrainConfig, train

RATE = 16000
TINY = {"sample_rate": RATE, "n_fft": 1024, "hop_length": 256, "n_mels": 32, "n_mfcc": 13, "hidden_size": 32,
        "num_layers": 1, "segment_frames": 8, "database_size": 256, "database_examples": 24}


def tiny(**kw) -> SynthMatch:
    return SynthMatch(SynthMatchConfig(**{**TINY, **kw}))


def sine(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    return amp * torch.sin(2 * math.pi * freq * t)


def notes(seconds: float = 3.0) -> torch.Tensor:
    """A synth line ``(1, samples)``: four gliding notes with gaps. Every segment of it sounds
    different (a held steady tone would give segments whose descriptors are equal but whose
    phases are not)."""
    parts = []
    for f in (220.0, 330.0, 440.0, 262.0):
        t = torch.arange(int(seconds / 8 * RATE)) / RATE
        glide = 2 * math.pi * f * (t + 2 * t ** 2)  # the pitch rises by 4x per second
        parts += [0.4 * torch.sin(glide) * (1 - t / t[-1] * 0.5), torch.zeros(len(t))]
    return torch.cat(parts)[None]


def test_descriptors_measure_pitch_class_loudness_brightness_and_noisiness():
    model = tiny()
    tone = model.descriptors(sine(440.0)[None])[0, 3:-3]  # frames away from the edges
    assert tone.shape[-1] == model.dim == 2 * 13 + 3 + 12
    assert model.descriptors(torch.zeros(1, 1000)).shape[1] == 1 + 1000 // model.config.hop_length
    mfcc, centroid, flatness, log_rms, chroma = (tone[:, :13], tone[:, 26], tone[:, 27], tone[:, 28],
                                                  tone[:, 29:])
    assert (chroma.argmax(-1) == 9).all()  # 440 Hz is an A
    assert (model.descriptors(sine(880.0)[None])[0, 3:-3, 29:].argmax(-1) == 9).all()  # and so is 880 Hz
    middle_c = sum(sine(261.63 * k, amp=0.5 / k) for k in range(1, 9))  # a harmonic note
    assert (model.descriptors(middle_c[None])[0, 3:-3, 29:].argmax(-1) == 0).all()  # its class: C
    assert log_rms.exp().mean() == pytest.approx(0.5 / math.sqrt(2), rel=0.05)  # a sine's RMS
    assert centroid.mean() == pytest.approx(440 / (RATE / 2), abs=0.01)
    noise = model.descriptors(torch.randn(1, RATE) * 0.1)[0, 3:-3]
    assert noise[:, 27].mean() > flatness.mean() + 3  # white noise is flat, a sine is not
    assert noise[:, 26].mean() > 0.4  # and bright
    assert not torch.allclose(mfcc, noise[:, :13])


def test_database_queried_with_its_own_keys_gives_its_audio_back():
    model = tiny()
    synth = notes()
    kept = model.build_database([(synth.repeat(2, 1) * 1.5, synth.repeat(2, 1))])
    # half-overlapping segments of the padded synth, silent ones dropped, plus one silence entry
    seg = model.segment_samples
    loud = synth[0].unfold(0, seg, seg // 2).pow(2).mean(-1).sqrt().gt(1e-4).sum()
    assert loud + 1 <= kept <= len(model.db_audio) and model.db_audio.abs().amax(-1)[-1] == 0
    rebuilt = model.reconstruct(synth[None].repeat(1, 2, 1))
    assert rebuilt.shape == (1, 2, synth.shape[-1])
    assert (rebuilt[0] - synth).abs().max() < 2e-3  # float16 storage, nothing else
    assert model.synth_mean.abs().sum() > 0 and model.mix_std.ne(1).any()  # statistics were fitted


def test_database_size_is_capped_and_the_subset_is_seeded():
    a, b = tiny(database_size=16), tiny(database_size=16)
    pairs = [(notes(), notes()) for _ in range(3)]
    assert a.build_database(pairs) == b.build_database(pairs) == 16
    assert torch.equal(a.db_audio, b.db_audio)
    c = tiny(database_size=16, seed=1)
    c.build_database(pairs)
    assert not torch.equal(a.db_audio, c.db_audio)


def test_checkpoint_round_trips_the_database_and_the_output(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    model.build_database([(notes().repeat(2, 1), notes().repeat(2, 1))])
    model.eval()
    mix = torch.randn(1, 2, 12345) * 0.1
    with torch.no_grad():
        before = model(mix)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt", family="synthmatch")
    for name in ("db_keys", "db_audio", "mix_mean", "synth_std"):
        assert torch.equal(getattr(loaded, name), getattr(model, name)), name
    with torch.no_grad():
        assert torch.equal(loaded(mix), before)


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
@pytest.mark.parametrize("shape", [(1, 1, 16000), (2, 2, 12345), (1, 3, 777)])
def test_output_has_the_input_shape_and_one_track_in_every_channel(arch, shape):
    torch.manual_seed(0)
    model = tiny(arch=arch, num_heads=2)
    model.build_database([(notes().repeat(2, 1), notes().repeat(2, 1))])
    with torch.no_grad():
        out = model.eval()(torch.randn(shape) * 0.1)
    assert out.shape == shape and torch.equal(out[:, 0], out[:, -1])
    loss = model.train().loss(torch.randn(2, 2, 8000), torch.randn(2, 2, 8000))
    loss.backward()
    assert loss.ndim == 0 and model.inp.weight.grad.abs().sum() > 0


def test_bad_settings_are_refused_by_name():
    with pytest.raises(CheckpointError, match="arch must be"):
        build_model("synthmatch", {"arch": "gru"})
    with pytest.raises(CheckpointError, match="segment_frames must be even"):
        build_model("synthmatch", {"segment_frames": 5})
    with pytest.raises(CheckpointError, match="retrieval must be"):
        build_model("synthmatch", {"retrieval": "best"})


def test_trained_matching_beats_random_segments_on_log_mel_distance(tmp_path):
    """The issue's bar, at the default config: after 200 training steps (about a minute) on
    synthetic tracks, descriptor matching is closer to the true synth than random database
    segments (same gain matching and cross-fades) by at least 1.5 dB median log-mel distance on
    the held-out tracks (measured: 2.3 dB here, 3.1 dB with seed 1; ``python -m bench.synthmatch``)."""
    source = SyntheticSource(num_tracks=24, seed=0, track_duration=20.0, cache=24)
    cfg = TrainConfig(model="synthmatch", epochs=8, steps_per_epoch=25, batch_size=8, segment=4.0,
                      valid_fraction=0.2, seed=0)
    result = train(source, tmp_path, cfg, {}, progress=False)
    losses = [h["valid_loss"] for h in result.history]
    assert min(losses[1:]) < losses[0]
    model = load_model(result.best)
    report = evaluate({"match": model, "random": model.with_retrieval("random")}, source,
                      valid_fraction=0.2, references=False)
    lmd = {name: scores.summary()["lmd_median"] for name, scores in report.methods.items()}
    assert lmd["match"] < lmd["random"] - 1.5, lmd
