from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from synthgen_lib.audio import audio_info, convert_channels, load_audio, resample, save_audio
from synthgen_lib.errors import AudioError

from .conftest import tone, write


@pytest.mark.parametrize("seconds, sr_in, expected", [
    (1.0, 44100, 32000),     # whole seconds stay whole
    (3.7, 44100, 118400),    # 163170 samples * 320/441
    (2.0, 48000, 64000),
    (1.0, 16000, 32000),     # upsampling
    (44101 / 44100, 44100, 32001),  # ceil(44101 * 320 / 441) = ceil(32000.73)
])
def test_resampled_length_is_exact(tmp_path, seconds, sr_in, expected):
    path = write(tmp_path / "a.wav", tone(seconds, sr_in), sr_in)
    wav = load_audio(path, sample_rate=32000)
    assert wav.shape == (1, expected)
    assert wav.dtype == torch.float32


def test_resampling_keeps_the_pitch(tmp_path):
    path = write(tmp_path / "a.wav", tone(1.0, 44100, freq=1000.0), 44100)
    wav = load_audio(path, sample_rate=32000)[0].numpy()
    spectrum = np.abs(np.fft.rfft(wav))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over exactly one second


def test_no_resampling_when_rates_match(tmp_path):
    x = tone(0.5, 32000)
    path = write(tmp_path / "a.wav", x, 32000, subtype="FLOAT")
    assert np.array_equal(load_audio(path, 32000).numpy(), x)


def test_mono_and_stereo_conversion(tmp_path):
    stereo = tone(0.25, 32000, channels=2)
    path = write(tmp_path / "s.wav", stereo, 32000, subtype="FLOAT")
    assert load_audio(path, channels=None).shape[0] == 2
    mono = load_audio(path, channels=1)
    assert mono.shape == (1, stereo.shape[1])
    np.testing.assert_allclose(mono[0].numpy(), stereo.mean(0), atol=1e-6)
    mono_path = write(tmp_path / "m.wav", tone(0.25, 32000), 32000, subtype="FLOAT")
    up = load_audio(mono_path, channels=2)
    assert up.shape[0] == 2 and torch.equal(up[0], up[1])


def test_multichannel_keeps_front_pair():
    six = torch.arange(6.0)[:, None].expand(6, 10)
    assert torch.equal(convert_channels(six, 2), six[:2])
    with pytest.raises(AudioError, match="cannot make 4 channels from 2"):
        convert_channels(six[:2], 4)


@pytest.mark.parametrize("ext, bits, tol", [(".wav", 16, 2 ** -15), (".wav", 24, 2 ** -23),
                                            (".flac", 16, 2 ** -15), (".flac", 24, 2 ** -23),
                                            (".wav", 32, 0.0)])
def test_save_round_trips_within_quantisation(tmp_path, rng, ext, bits, tol):
    x = (rng.uniform(-0.9, 0.9, (2, 4000))).astype(np.float32)
    path = save_audio(tmp_path / f"out{ext}", x, 32000, bits=bits)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.frames) == (32000, 2, 4000)
    back = load_audio(path, sample_rate=None).numpy()
    assert np.abs(back - x).max() <= tol


def test_save_never_clips(tmp_path):
    x = np.array([[0.5, -1.6, 2.0, 0.1]], dtype=np.float32)
    back = load_audio(save_audio(tmp_path / "r.wav", x, 8000), sample_rate=None).numpy()
    assert np.abs(back).max() <= 1.0
    # rescaled, not cut: the shape of the waveform is kept
    np.testing.assert_allclose(back / back[0, 2], x / x[0, 2], atol=1e-3)
    clamped = load_audio(save_audio(tmp_path / "c.wav", x, 8000, clip="clamp"), sample_rate=None).numpy()
    assert clamped[0, 0] == pytest.approx(0.5, abs=1e-4) and clamped[0, 2] == pytest.approx(1.0, abs=1e-3)
    floats = load_audio(save_audio(tmp_path / "f.wav", x, 8000, bits=32), sample_rate=None).numpy()
    np.testing.assert_array_equal(floats, x)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = save_audio(tmp_path / "x.wav", np.zeros((1, 100), np.float32), 8000)
    before = target.read_bytes()
    with pytest.raises(AudioError, match="NaN"):
        save_audio(target, np.full((1, 100), np.nan, np.float32), 8000)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_partial_read(tmp_path):
    x = np.arange(32000, dtype=np.float32)[None] / 32000
    path = write(tmp_path / "ramp.wav", x, 32000, subtype="FLOAT")
    part = load_audio(path, offset=0.25, duration=0.5).numpy()
    np.testing.assert_array_equal(part, x[:, 8000:24000])


@pytest.mark.parametrize("fmt, subtype", [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_compressed_formats_load(tmp_path, fmt, subtype):
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(str(path), tone(1.0, 44100, freq=500.0).T, 44100, format=fmt, subtype=subtype)
    wav = load_audio(path, sample_rate=32000)[0].numpy()
    assert abs(len(wav) - 32000) < 2000  # MP3 adds encoder padding
    assert abs(np.argmax(np.abs(np.fft.rfft(wav[:32000]))) * 32000 / 32000 - 500) <= 2


def test_info_reads_header(tmp_path):
    path = write(tmp_path / "a.flac", tone(1.5, 22050, channels=2), 22050)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (22050, 2, 33075)
    assert info.duration == pytest.approx(1.5)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_text("this is not audio"), "not a readable audio file"),
])
def test_bad_files_get_one_clear_line(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        load_audio(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_nan_samples_are_refused(tmp_path):
    x = tone(0.1, 8000)
    x[0, 10] = np.nan
    path = write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(path)


def test_resample_identity_and_batch_shape():
    x = torch.randn(3, 2, 441)
    assert resample(x, 44100, 44100) is x
    assert resample(x, 44100, 32000).shape == (3, 2, 320)


def test_an_mp3_is_counted_once_per_version_of_the_file(tmp_path, monkeypatch):
    """load_audio reads an MP3's header for every block: its frames are counted once, and again
    only when the file changes."""
    import synthgen_lib.audio as audio

    path = tmp_path / "song.mp3"
    sf.write(str(path), tone(2.0, 44100).T, 44100, format="MP3")
    reads = []
    original = audio.Path.read_bytes
    monkeypatch.setattr(audio.Path, "read_bytes", lambda self: (reads.append(self.name), original(self))[1])
    for start in (0.0, 0.5, 1.0):
        load_audio(path, None, offset=start, duration=0.5)
    assert reads.count("song.mp3") == 1
    sf.write(str(path), tone(3.0, 44100).T, 44100, format="MP3")  # a new version of the file
    assert abs(audio_info(path).duration - 3.0) < 0.1 and reads.count("song.mp3") == 2
