"""MUSDB18 through the real ``musdb`` package, on a tiny MUSDB18-HQ (WAV) layout we write."""
from __future__ import annotations

import numpy as np
import pytest

from synthgen_lib.data.musdb_source import MusdbSource
from synthgen_lib.errors import DatasetError

from ..conftest import tone, write

# 'Actions - One Minute Smile' is on musdb's own validation list.
TRACKS = {"train": ["Actions - One Minute Smile", "Zed - Train Song"], "test": ["Zed - Test Song"]}


@pytest.fixture
def musdb_root(tmp_path):
    sr = 44100
    for subset, names in TRACKS.items():
        for i, name in enumerate(names):
            stems = {s: tone(1.5, sr, 2, 100 * (j + 1) + i, 0.2) for j, s in
                     enumerate(("drums", "bass", "other", "vocals"))}
            folder = tmp_path / subset / name
            for s, x in stems.items():
                write(folder / f"{s}.wav", x, sr, "FLOAT")
            write(folder / "mixture.wav", sum(stems.values()), sr, "FLOAT")
    return tmp_path


def test_tracks_splits_and_descriptions(musdb_root):
    src = MusdbSource(musdb_root, target="other")
    splits = {t.name: t.split for t in src.tracks()}
    assert splits == {"Actions - One Minute Smile": "valid", "Zed - Train Song": "train",
                      "Zed - Test Song": "test"}
    info = src.info("Zed - Train Song")
    assert info.duration == pytest.approx(1.5)
    assert info.description == "other stem of 'Zed - Train Song' (MUSDB18 train)"


def test_target_stem_is_loaded_and_resampled(musdb_root):
    src = MusdbSource(musdb_root, target="bass")
    audio = src.load("Zed - Test Song", 32000, 2, offset=0.5, duration=0.5)
    assert audio.mix.shape == audio.synth.shape == (2, 16000)
    expected = tone(1.5, 32000, 2, 200, 0.2)[:, 16000:32000]  # bass of test track 0 at 200/400 Hz
    assert np.abs(audio.synth.numpy() - expected).max() < 0.02
    residual = audio.residual.numpy()
    assert np.sqrt((residual ** 2).mean()) > 0.1  # drums + other + vocals remain


def test_bad_target_and_empty_root(tmp_path, musdb_root):
    with pytest.raises(DatasetError, match="target must be one of"):
        MusdbSource(musdb_root, target="synth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no MUSDB tracks found"):
        MusdbSource(tmp_path / "empty")
