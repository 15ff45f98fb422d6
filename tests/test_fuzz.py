"""Property-based tests (hypothesis) over the loader, resampler, windowing and overlap-add.

The example budget is fixed (``max_examples``) so CI time is bounded; hypothesis prints how
many examples ran with ``--hypothesis-show-statistics``, which .ci/run passes.
"""
from __future__ import annotations

import numpy as np
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthgen_lib.audio import load_audio, resample, save_audio
from synthgen_lib.data import TrackInfo, make_windows, window_starts
from synthgen_lib.separate import overlap_add

RATES = st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000])
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(frames=st.integers(1, 5000), channels=st.integers(1, 6), rate=RATES, target=RATES,
       subtype=st.sampled_from(["PCM_U8", "PCM_16", "PCM_24", "FLOAT"]), want=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 2 ** 16))
def test_loader_handles_any_file(tmp_path, frames, channels, rate, target, subtype, want, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    path = tmp_path / f"f{seed}.wav"
    sf.write(str(path), x, rate, subtype=subtype)
    wav = load_audio(path, sample_rate=target, channels=want)
    expected_len = frames if target == rate else int(np.ceil(frames * target / rate))
    assert wav.shape == ((want or channels) if not (want == 2 and channels == 1) else 2, expected_len)
    assert wav.dtype == torch.float32 and torch.isfinite(wav).all()
    if target == rate and want is None:
        tol = {"PCM_U8": 1 / 64, "PCM_16": 1e-4, "PCM_24": 1e-6, "FLOAT": 0}[subtype]
        assert np.abs(wav.numpy().T - x).max() <= tol


@FUZZ
@given(length=st.integers(1, 4000), src=RATES, dst=RATES, seed=st.integers(0, 2 ** 16))
def test_resampler_length_and_stability(length, src, dst, seed):
    x = torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (2, length)).astype(np.float32))
    y = resample(x, src, dst)
    assert y.shape == (2, int(np.ceil(length * dst / src)) if src != dst else length)
    assert torch.isfinite(y).all() and y.abs().max() < 2.0


@FUZZ
@given(duration=st.floats(0.0, 400.0), window=st.floats(0.5, 30.0), hop=st.floats(0.25, 30.0),
       short=st.sampled_from(["pad", "skip"]))
def test_windows_fit_inside_the_track(duration, window, hop, short):
    starts = window_starts(duration, window, hop, short)
    if duration >= window:
        assert starts[0] == 0 and all(s + window <= duration + 1e-6 for s in starts)
        assert starts[-1] + hop + window > duration - 1e-6  # no window left out
        assert all(abs(b - a - hop) < 1e-6 for a, b in zip(starts, starts[1:]))
    else:
        assert starts == ([0.0] if short == "pad" and duration > 0 else [])


@FUZZ
@given(n=st.integers(2, 60), frac=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
def test_split_never_shares_a_track(n, frac, seed):
    tracks = [TrackInfo(f"t{i}", 20.0) for i in range(n)]
    ws = make_windows(tracks, 10.0, 5.0, frac, seed)
    train = {w.track for w in ws.of("train")}
    valid = {w.track for w in ws.of("valid")}
    assert not train & valid and train | valid == {t.name for t in tracks} and train


@FUZZ
@given(n=st.integers(1, 3000), channels=st.integers(1, 3), segment=st.integers(1, 1200),
       overlap=st.floats(0.0, 0.9), batch=st.integers(1, 5), seed=st.integers(0, 1000))
def test_overlap_add_of_identity_is_exact(n, channels, segment, overlap, batch, seed):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(channels, n)).astype(np.float32))
    torch.testing.assert_close(overlap_add(lambda c: c, x, segment, overlap, batch), x, rtol=1e-5, atol=1e-5)


@FUZZ
@given(values=st.lists(st.floats(-4.0, 4.0, allow_nan=False, width=32), min_size=1, max_size=300),
       bits=st.sampled_from([16, 24, 32]))
def test_saving_never_clips_or_fails(tmp_path, values, bits):
    x = np.asarray(values, np.float32)[None]
    back = load_audio(save_audio(tmp_path / "x.wav", x, 8000, bits=bits), sample_rate=None).numpy()
    assert back.shape == x.shape and np.abs(back).max() <= max(1.0, float(np.abs(x).max()) if bits == 32 else 1.0)
    if bits == 32:
        np.testing.assert_array_equal(back, x)
