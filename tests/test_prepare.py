from __future__ import annotations

import json

import numpy as np
import pytest

from synthgen_lib.audio import load_audio
from synthgen_lib.data import FolderSource
from synthgen_lib.data.synthetic import SyntheticSource, render_track
from synthgen_lib.errors import DatasetError, SynthGenError
from synthgen_lib.prepare import prepare

from .conftest import tone, write


def test_synthetic_set_is_written_in_the_folder_layout_and_resumes(tmp_path):
    out = tmp_path / "ds"
    report = prepare("synthetic", output=out, num_tracks=3, track_duration=11.0, seed=2,
                     progress=False)
    assert report.written == 3 and report.counts == {"train": {"tracks": 2, "windows": 2},
                                                     "valid": {"tracks": 1, "windows": 1}}
    src = FolderSource(out)  # what was written reads back as a folder dataset
    assert len(src) == 3 and not src.problems.groups
    track = render_track(2, 1, duration=11.0)
    written = load_audio(out / "synth" / f"{track.name}.wav").numpy()
    assert np.abs(written - track.synth).max() < 2 ** -14  # 16-bit quantisation only
    assert src.info(track.name).description == track.description
    saved = json.loads((out / "prepare.json").read_text())
    assert saved["counts"] == report.counts and len(saved["tracks"]) == 3

    (out / "mix" / f"{track.name}.wav").unlink()  # as if interrupted before this track finished
    again = prepare("synthetic", output=out, num_tracks=3, track_duration=11.0, seed=2, progress=False)
    assert again.written == 1 and (out / "mix" / f"{track.name}.wav").is_file()


def test_short_tracks_are_reported_with_a_fix(tmp_path):
    for name in ("a", "b"):
        write(tmp_path / "mix" / f"{name}.wav", tone(7.0, 8000), 8000)
        write(tmp_path / "synth" / f"{name}.wav", tone(7.0, 8000), 8000)
    report = prepare("folder", tmp_path, window=10.0, hop=5.0)
    assert report.total_windows == 2  # padded, never silently nothing
    assert report.notes == ["2 of 2 tracks are shorter than the 10 s window (shortest 7.0 s) and "
                            "were zero-padded to one window each; use --window 7 --hop 3.5 to cut "
                            "them into full windows"]
    skipped = prepare("folder", tmp_path, short="skip")
    assert skipped.total_windows == 0 and "were skipped" in skipped.notes[0]
    text = report.format()
    assert "note: 2 of 2 tracks" in text and "a " in text


def test_format_lists_splits_and_tracks():
    report = prepare("synthetic", num_tracks=25, track_duration=20.0, seed=0)
    text = report.format(max_tracks=5)
    assert text.splitlines()[0] == "source: synthetic — 25 tracks, 10 s windows every 5 s, 32000 Hz"
    assert "... and 20 more tracks" in text
    assert report.counts["train"]["windows"] + report.counts["valid"]["windows"] == 75


def test_unknown_source_is_a_clear_error():
    from synthgen_lib.errors import SynthGenError

    with pytest.raises(SynthGenError, match="unknown source 'napster'"):
        prepare("napster", "x")


class _OneBadTrack(SyntheticSource):
    """A synthetic set whose second track cannot be made."""

    def _load(self, info, sample_rate, offset, duration):
        if info.name.endswith("00001"):
            raise SynthGenError(f"{info.name}: cannot be rendered")
        return super()._load(info, sample_rate, offset, duration)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_track_that_fails_is_listed_and_the_others_are_written(tmp_path, workers):
    report = prepare(_OneBadTrack(num_tracks=3, seed=0, track_duration=3.0), output=tmp_path, workers=workers,
                     window=2.0, hop=1.0, progress=False)
    assert sorted(p.stem for p in (tmp_path / "mix").glob("*.wav")) == ["synthetic_s0_00000", "synthetic_s0_00002"]
    assert report.written == 2
    assert report.problems == ["track not written: synthetic_s0_00001: cannot be rendered"]
    assert "problem: track not written: synthetic_s0_00001" in report.format()


def test_a_folder_started_from_one_dataset_refuses_another(tmp_path):
    out = tmp_path / "synth64"
    prepare("synthetic", output=out, num_tracks=2, track_duration=10.0, progress=False)
    for kind in ("mix", "synth"):
        write(tmp_path / "mine" / kind / "a.wav", tone(10.0, 32000, 2), 32000)
    with pytest.raises(DatasetError, match=r"prepared from the synthetic source, not the folder source .*another DATASET"):
        prepare("folder", tmp_path / "mine", out, progress=False)
    assert sorted(p.stem for p in (out / "mix").iterdir()) == ["synthetic_s0_00000", "synthetic_s0_00001"]
    assert prepare("synthetic", output=out, num_tracks=2, track_duration=10.0, progress=False).written == 0
    mine = tmp_path / "mine-prepared"
    prepare("folder", tmp_path / "mine", mine, progress=False)
    (tmp_path / "other" / "mix").mkdir(parents=True)
    for kind in ("mix", "synth"):
        write(tmp_path / "other" / kind / "b.wav", tone(10.0, 32000, 2), 32000)
    with pytest.raises(DatasetError, match="not the folder source"):  # same source, another folder
        prepare("folder", tmp_path / "other", mine, progress=False)


def test_a_generated_set_resumes_only_with_the_settings_it_was_made_with(tmp_path):
    """Tracks of the same name but another share of two-part synths (or another length) would
    mix two datasets under one folder: refused, the tracks already written kept; more tracks of
    the same set resume."""
    out = tmp_path / "set"
    prepare("synthetic", output=out, num_tracks=2, track_duration=4.0, two_parts=1.0, progress=False)
    written = {p.name: p.read_bytes() for p in (out / "mix").iterdir()}
    with pytest.raises(DatasetError, match=r"prepared with --two-parts 1.0, not 0.3 — give a new --output folder"):
        prepare("synthetic", output=out, num_tracks=3, track_duration=4.0, progress=False)
    with pytest.raises(DatasetError, match=r"--track-duration 4.0, not 5.0"):
        prepare("synthetic", output=out, num_tracks=3, track_duration=5.0, two_parts=1.0, progress=False)
    assert {p.name: p.read_bytes() for p in (out / "mix").iterdir()} == written
    assert prepare("synthetic", output=out, num_tracks=3, track_duration=4.0, two_parts=1.0, progress=False).written == 1


def test_a_synth_of_two_parts_is_also_written_part_by_part(tmp_path):
    out = tmp_path / "ds"
    prepare("synthetic", output=out, num_tracks=6, track_duration=10.0, seed=3, progress=False)
    source, written = SyntheticSource(num_tracks=6, seed=3, track_duration=10.0), FolderSource(out)
    two = [t for t in source.tracks() if t.parts]
    assert two and not written.problems.groups
    for info in source.tracks():
        assert written.info(info.name).parts == info.parts  # names and descriptions
        assert (out / "synth" / info.name).is_dir() == bool(info.parts)
    rendered = source.load(two[0].name, 32000, 2)
    for name, part in written.load(two[0].name, 32000, 2).parts.items():
        assert np.abs(part.numpy() - rendered.parts[name].numpy()).max() < 2 ** -14
