from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from synthgen_lib.errors import SynthGenError
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
    [done] = list(separate_files([tmp_path / "long.wav"], model, tmp_path / "out", bits=32,
                                        block=20.0, context=2.0, segment=4.0))
    folder = done.folder
    synth = sf.read(str(folder / "synth.wav"), always_2d=True)[0].T
    residual = sf.read(str(folder / "residual.wav"), always_2d=True)[0].T
    assert synth.shape == mix.shape
    np.testing.assert_allclose(synth, 0.5 * mix, atol=1e-6)  # seams between blocks are invisible
    np.testing.assert_allclose(synth + residual, mix, atol=1e-6)
    # only one block plus its context was ever in memory, never the whole file
    assert len(seen) == 5 and max(seen) == (20 + 2 * 2) * rate


def _files(tmp_path, names, rate=8000, seconds=1.5, amp=0.3):
    from .conftest import tone, write

    return [write(tmp_path / "in" / f"{n}.wav", tone(seconds, rate, 2, amp=amp), rate) for n in names]


def _checkpoint(path):
    from synthgen_lib.models import save_checkpoint

    return save_checkpoint(path, SynthLSTM(SynthLSTMConfig(n_fft=256, hop_length=64, n_mels=16, hidden_size=8,
                                                           num_layers=1)))


def test_a_batch_goes_on_past_a_bad_file_and_a_rerun_skips_finished_files(tmp_path, capsys):
    from synthgen_lib.cli import main

    good = _files(tmp_path, ["a", "c"])
    bad = tmp_path / "in" / "b.wav"
    bad.write_bytes(b"")
    model = _checkpoint(tmp_path / "m.pt")
    args = ["separate", str(good[0]), str(bad), str(good[1]), "--model", str(model), "--output", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "b.wav: the file is empty" in err and "1 of 3 files failed" in err
    stems = [tmp_path / "out" / n / "synth.wav" for n in ("a", "c")]
    assert all(p.is_file() for p in stems) and not (tmp_path / "out" / "b").exists()
    written = [p.stat().st_mtime_ns for p in stems]
    assert main(args) == 2
    out = capsys.readouterr().out
    assert out.count("skipped (already separated") == 2
    assert [p.stat().st_mtime_ns for p in stems] == written  # not rewritten
    assert main(args + ["--overlap", "0.5"]) == 2  # other settings: separated again
    assert [p.stat().st_mtime_ns for p in stems] != written


def test_a_file_given_twice_is_separated_once_and_said(tmp_path, capsys):
    from synthgen_lib.cli import main

    [a] = _files(tmp_path, ["a"])
    model = _checkpoint(tmp_path / "m.pt")
    assert main(["separate", str(a), str(a), "--model", str(model), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.count("-> ") == 1 and "given more than once; separated once" in out


def test_temp_files_of_a_killed_run_are_removed_and_a_failed_rewrite_keeps_the_old_stem(tmp_path, monkeypatch):
    import subprocess

    import soundfile as sf

    from synthgen_lib.separate import separate_files

    [a] = _files(tmp_path, ["a"])
    model = _checkpoint(tmp_path / "m.pt")
    dead = subprocess.Popen(["true"])  # a process id that no longer runs
    dead.wait()
    stale = tmp_path / "out" / "a" / f".synth.wav.{dead.pid}.x1y2.tmp.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(bytes(1000))
    [done] = separate_files([a], str(model), tmp_path / "out")
    assert done.status == "separated" and not stale.exists()
    before = (tmp_path / "out" / "a" / "synth.wav").read_bytes()

    def full(self, data):
        raise sf.LibsndfileError(2)
    monkeypatch.setattr(sf.SoundFile, "write", full)
    [done] = separate_files([a], str(model), tmp_path / "out", overlap=0.5)
    assert done.status == "failed" and "could not be written" in done.note
    assert (tmp_path / "out" / "a" / "synth.wav").read_bytes() == before
    assert [p.name for p in (tmp_path / "out" / "a").iterdir() if p.name.startswith(".")] == []


def test_float_mixes_beyond_full_scale_are_lowered_not_clipped_and_huge_ones_stay_finite(tmp_path):
    import numpy as np
    import soundfile as sf

    from synthgen_lib.separate import separate_files

    from .conftest import tone, write

    loud = write(tmp_path / "loud.wav", tone(1.0, 8000, 2, amp=4.0), 8000, "FLOAT")  # +12 dBFS
    [done] = separate_files([loud], Identity(8000), tmp_path / "out", segment=0.5)
    assert "lowered by 12.0 dB" in done.note
    synth = sf.read(str(done.folder / "synth.wav"), always_2d=True)[0].T
    np.testing.assert_allclose(synth, tone(1.0, 8000, 2, amp=1.0), atol=1e-3)  # the shape kept, not clipped
    huge = write(tmp_path / "huge.wav", tone(1.0, 8000, 2, amp=1e18), 8000, "FLOAT")
    [done] = separate_files([huge], Identity(8000), tmp_path / "out", segment=0.5, bits=32)
    synth = sf.read(str(done.folder / "synth.wav"), always_2d=True)[0].T
    np.testing.assert_allclose(synth / 1e18, tone(1.0, 8000, 2, amp=1.0), atol=1e-3)
    # a spectrogram model: the power of such a mix overflows float32 unless it is scaled first
    [done] = separate_files([huge], str(_checkpoint(tmp_path / "m.pt")), tmp_path / "lstm", segment=0.5, bits=32)
    assert done.status == "separated", done.note
    synth, residual = (sf.read(str(done.folder / f"{n}.wav"), always_2d=True)[0].T for n in ("synth", "residual"))
    assert np.isfinite(synth).all() and np.abs(synth).max() > 1e15
    np.testing.assert_allclose((synth + residual) / 1e18, tone(1.0, 8000, 2, amp=1.0), atol=1e-3)


def test_a_model_that_returns_nan_writes_nothing(tmp_path):
    from synthgen_lib.separate import separate_files

    class Broken(Identity):
        def forward(self, x):
            return x * float("nan")

    [a] = _files(tmp_path, ["a"])
    with pytest.raises(SynthGenError, match="the separated synth holds NaN or infinite samples"):
        separate(torch.randn(2, 8000), Broken(8000), 8000, segment=0.5)
    [done] = separate_files([a], Broken(8000), tmp_path / "out", segment=0.5)
    assert done.status == "failed" and "NaN or infinite" in done.note
    assert not (tmp_path / "out" / "a" / "synth.wav").exists()


def test_odd_rates_resample_with_bounded_filters_and_keep_length():
    from synthgen_lib.audio import MAX_RESAMPLING_FILTER, _resampling_rates

    for rate in (8000, 11025, 22050, 44100, 48000, 88200, 96000):  # the usual rates: exact
        assert _resampling_rates(rate, 32000) == (rate, 32000)
    for rate in (22254, 11127, 7919, 44101):
        a, b = _resampling_rates(rate, 32000)
        assert abs(a - rate) <= 25 and b == 32000
        g = math.gcd(a, b)
        assert (a // g) * (b // g) <= MAX_RESAMPLING_FILTER
    mix = torch.randn(2, 3 * 22254) * 0.1
    out = separate(mix, Identity(32000), sample_rate=22254, segment=1.0)
    assert out.synth.shape == mix.shape
    torch.testing.assert_close(out.synth + out.residual, mix)
    assert float(((out.synth - mix) ** 2).mean() / (mix ** 2).mean()) < 0.35  # a low-passed copy, in time


def test_many_channels_and_long_segments_are_separated_a_few_at_a_time():
    model = Identity()
    mix = torch.randn(8, 32000) * 0.1
    out = separate(mix, model, segment=1.0, batch_size=4)
    torch.testing.assert_close(out.synth, mix)
    assert max(shape[1] for shape in model.calls) == 2  # channels two by two
    long_model = Identity()
    separate(torch.randn(2, 32000 * 100) * 0.1, long_model, segment=60.0, batch_size=4)
    assert max(shape[0] for shape in long_model.calls) == 1  # 60 s segments one at a time
