from __future__ import annotations

import numpy as np
import pytest

from synthgen_lib.data import DEFAULT_DESCRIPTION, FolderSource
from synthgen_lib.errors import DatasetError

from ..conftest import tone, write


def _dataset(root, names=("a", "b"), sr=32000, seconds=2.0):
    for i, name in enumerate(names):
        write(root / "mix" / f"{name}.wav", tone(seconds, sr, 2, 300 + i), sr)
        write(root / "synth" / f"{name}.flac", tone(seconds, sr, 2, 300 + i, amp=0.2), sr)
    return root


def test_pairs_by_name_across_formats(tmp_path):
    root = _dataset(tmp_path)
    (root / "description").mkdir()
    (root / "description" / "a.txt").write_text("  bright   detuned\nsaw lead \n")
    src = FolderSource(root)
    assert [t.name for t in src.tracks()] == ["a", "b"]
    assert src.info("a").description == "bright detuned saw lead"
    assert src.info("b").description == DEFAULT_DESCRIPTION
    assert src.problems.lines() == [f"no description (using '{DEFAULT_DESCRIPTION}') (1): b"]
    audio = src.load("a", 32000, 2)
    assert audio.mix.shape == audio.synth.shape == (2, 64000)
    np.testing.assert_allclose(audio.synth.numpy(), tone(2.0, 32000, 2, 300, 0.2), atol=1e-4)


def test_unpaired_files_are_reported_not_used(tmp_path):
    root = _dataset(tmp_path, names=("a",))
    write(root / "mix" / "only_mix.wav", tone(1, 8000), 8000)
    write(root / "synth" / "only_synth.wav", tone(1, 8000), 8000)
    (root / "description").mkdir()
    (root / "description" / "orphan.txt").write_text("pad")
    (root / "mix" / "notes.md").write_text("not audio, ignored")
    src = FolderSource(root)
    assert [t.name for t in src.tracks()] == ["a"]
    lines = src.problems.lines()
    assert "mix without synth (skipped) (1): only_mix.wav" in lines
    assert "synth without mix (skipped) (1): only_synth.wav" in lines
    assert "description without audio (ignored) (1): orphan.txt" in lines
    with pytest.raises(DatasetError, match="only_mix.wav"):
        FolderSource(root, strict=True)


def test_unreadable_file_is_skipped_and_listed(tmp_path):
    root = _dataset(tmp_path)
    (root / "mix" / "c.wav").write_text("garbage")
    (root / "synth" / "c.wav").write_text("garbage")
    src = FolderSource(root)
    assert [t.name for t in src.tracks()] == ["a", "b"]
    assert any(line.startswith("unreadable audio (skipped) (1):") and "c.wav" in line
               for line in src.problems.lines())


def test_lengths_and_rates_are_aligned(tmp_path):
    write(tmp_path / "mix" / "x.wav", tone(3.0, 44100, 1), 44100)
    write(tmp_path / "synth" / "x.wav", tone(2.5, 48000, 2), 48000)
    src = FolderSource(tmp_path)
    assert src.info("x").duration == pytest.approx(2.5)
    assert any("mix 3.00 s, synth 2.50 s" in line for line in src.problems.lines())
    audio = src.load("x", 32000, 2)
    assert audio.mix.shape == audio.synth.shape == (2, 80000)


@pytest.mark.parametrize("layout, message", [
    (lambda r: None, "no such folder"),
    (lambda r: (r / "mix").mkdir(parents=True), "expected 'mix/' and 'synth/'"),
    (lambda r: ((r / "mix").mkdir(parents=True), (r / "synth").mkdir()), "no paired mix/synth files"),
])
def test_bad_folders_get_one_clear_line(tmp_path, layout, message):
    root = tmp_path / "ds"
    layout(root)
    with pytest.raises(DatasetError) as err:
        FolderSource(root)
    assert message in str(err.value) and str(root) in str(err.value)


def test_synth_parts_in_a_folder_of_their_own_each_with_a_description(tmp_path):
    root = _dataset(tmp_path, names=("a", "b"))
    write(root / "synth" / "a" / "pad.wav", tone(2.0, 32000, 2, 200, amp=0.1), 32000)
    write(root / "synth" / "a" / "lead.flac", tone(2.0, 32000, 2, 900, amp=0.1), 32000)
    (root / "description" / "a").mkdir(parents=True)
    (root / "description" / "a" / "pad.txt").write_text("warm  pad, low register\n")
    (root / "description" / "a.txt").write_text("pad and lead; C major")
    src = FolderSource(root)
    assert [(p.name, p.description) for p in src.info("a").parts] == [("lead", "pad and lead"),
                                                                       ("pad", "warm pad, low register")]
    assert src.problems.lines()[0] == "synth part without a description (using the track's) (1): a/lead"
    assert src.info("b").parts == ()
    audio = src.load("a", 32000, 2, offset=0.5, duration=1.0)
    np.testing.assert_allclose(audio.parts["pad"].numpy(), tone(2.0, 32000, 2, 200, 0.1)[:, 16000:48000], atol=1e-4)
    assert audio.synth.shape == audio.parts["lead"].shape == (2, 32000)


def test_parts_without_a_whole_synth_file_add_up_to_the_synth(tmp_path):
    root = tmp_path
    write(root / "mix" / "a.wav", tone(2.0, 32000, 2, 300), 32000)
    write(root / "synth" / "a" / "pad.wav", tone(2.0, 32000, 2, 200, amp=0.1), 32000)
    write(root / "synth" / "a" / "bass.wav", tone(1.5, 32000, 1, 60, amp=0.2), 32000)  # shorter, mono
    src = FolderSource(root)
    assert src.info("a").duration == pytest.approx(2.0, abs=0.01)
    audio = src.load("a", 32000, 2)
    expected = tone(2.0, 32000, 2, 200, 0.1)
    expected[:, :48000] += tone(1.5, 32000, 1, 60, 0.2)
    np.testing.assert_allclose(audio.synth.numpy(), expected, atol=1e-4)
