"""Slakh2100 synth selection on a fixture folder with metadata.yaml files we write."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from synthgen_lib.data.slakh import SlakhSource, is_synth_stem
from synthgen_lib.errors import DatasetError

from ..conftest import tone, write

SR = 44100


def _track(root, name, stems: dict[str, dict], with_mix=True):
    folder = root / name
    audio = {}
    for i, (key, meta) in enumerate(stems.items()):
        audio[key] = tone(1.0, SR, 1, 110 * (i + 1), 0.15)
        if meta.pop("_missing", False):
            continue
        write(folder / "stems" / f"{key}.flac", audio[key], SR)
    if with_mix:
        write(folder / "mix.flac", sum(audio.values()), SR)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(yaml.safe_dump({"audio_dir": "stems", "stems": stems}))
    return audio


def _stem(inst_class, program, drum=False, name="x", **extra):
    return {"inst_class": inst_class, "program_num": program, "is_drum": drum,
            "midi_program_name": name, "audio_rendered": True, **extra}


@pytest.fixture
def slakh_root(tmp_path):
    root = tmp_path / "slakh"
    audio = _track(root / "train", "Track00001", {
        "S00": _stem("Piano", 0, name="Acoustic Grand Piano"),
        "S01": _stem("Synth Lead", 81, name="Lead 2 (sawtooth)"),
        "S02": _stem("Drums", 128, drum=True, name="Drums"),
        "S03": _stem("Synth Pad", 89, name="Pad 2 (warm)"),
        "S04": _stem("Bass", 33, name="Electric Bass (finger)"),
    })
    _track(root / "validation", "Track00002", {
        "S00": _stem("Guitar", 25), "S01": _stem("Bass", 33), "S02": _stem("Drums", 128, True),
    })
    _track(root / "test", "Track00003", {
        "S00": _stem("Synth Pad", 90, name="Pad 3 (polysynth)"), "S01": _stem("Organ", 16),
        "S02": _stem("Synth Lead", 80, name="Lead 1 (square)", _missing=True),
    }, with_mix=False)
    (root / "omitted" / "Track00004").mkdir(parents=True)
    return root, audio


def test_synth_stems_are_selected_by_class_and_program():
    assert is_synth_stem(_stem("Synth Lead", 81)) and is_synth_stem(_stem("Synth Pad", 95))
    assert is_synth_stem({"inst_class": "Unknown", "program_num": 85, "is_drum": False})
    assert not is_synth_stem(_stem("Piano", 0)) and not is_synth_stem(_stem("Bass", 38))
    assert not is_synth_stem(_stem("Drums", 128, drum=True))


def test_tracks_splits_and_descriptions(slakh_root):
    root, _ = slakh_root
    src = SlakhSource(root)
    assert {t.name: t.split for t in src.tracks()} == {"Track00001": "train", "Track00003": "test"}
    assert src.problems.lines() == ["no synth lead/pad stem (skipped) (1): Track00002"]
    d = src.info("Track00001").description
    assert d.startswith("synth lead (Lead 2 (sawtooth)), synth pad (Pad 2 (warm))")
    assert d.endswith("with bass, drums, piano")


def test_synth_is_the_sum_of_synth_stems(slakh_root):
    root, audio = slakh_root
    src = SlakhSource(root)
    got = src.load("Track00001", SR, 1)
    np.testing.assert_allclose(got.synth.numpy(), audio["S01"] + audio["S03"], atol=2e-4)
    np.testing.assert_allclose(got.mix.numpy(), sum(audio.values()), atol=2e-4)
    # no mix.flac: the mix is rebuilt from the stem files that exist; the missing lead is absent
    t3 = src.load("Track00003", 32000, 2)
    assert t3.mix.shape == (2, 32000)
    assert float((t3.mix - t3.synth).abs().max()) > 0.05  # the organ is accompaniment


def test_no_synth_anywhere_is_a_clear_error(tmp_path):
    _track(tmp_path, "Track00009", {"S00": _stem("Piano", 0)})
    with pytest.raises(DatasetError, match="no Slakh track with a synth stem"):
        SlakhSource(tmp_path)
