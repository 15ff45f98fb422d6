from __future__ import annotations

import pytest

from synthgen_lib.data import TrackInfo, WindowDataset, make_windows, split_tracks, window_starts
from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.errors import SynthGenError


@pytest.mark.parametrize("duration, expected", [
    (10.0, [0.0]), (14.99, [0.0]), (15.0, [0.0, 5.0]), (30.0, [0.0, 5.0, 10.0, 15.0, 20.0]),
    (187.3, [5.0 * k for k in range(36)]),
])
def test_window_counts_for_known_durations(duration, expected):
    assert window_starts(duration, 10.0, 5.0) == expected


def test_short_tracks_are_padded_or_skipped():
    assert window_starts(7.0, 10.0, 5.0, short="pad") == [0.0]
    assert window_starts(7.0, 10.0, 5.0, short="skip") == []
    assert window_starts(7.0, 5.0, 2.5) == [0.0]
    with pytest.raises(SynthGenError, match="window and hop must be positive"):
        window_starts(10.0, 0.0, 5.0)


def _tracks(n, duration=30.0):
    return [TrackInfo(f"t{i:03d}", duration) for i in range(n)]


def test_split_is_by_track_deterministic_and_sized():
    tracks = _tracks(50)
    a, b = split_tracks(tracks, 0.2, seed=3), split_tracks(list(reversed(tracks)), 0.2, seed=3)
    assert a == b  # order of listing does not matter
    assert sum(v == "valid" for v in a.values()) == 10
    assert split_tracks(tracks, 0.2, seed=4) != a
    assert list(split_tracks(_tracks(2), 0.01).values()).count("valid") == 1  # never empty
    assert list(split_tracks(_tracks(1), 0.5).values()) == ["train"]  # never all


def test_dataset_splits_are_kept():
    tracks = [TrackInfo("a", 20, split="valid"), TrackInfo("b", 20, split="test"), *_tracks(9)]
    splits = split_tracks(tracks, 0.1)
    assert splits["a"] == "valid" and splits["b"] == "test"
    assert sum(v == "valid" for v in splits.values()) == 2


def test_no_track_in_both_splits():
    ws = make_windows(_tracks(40, 32.0), 10.0, 5.0, valid_fraction=0.25, seed=1)
    train = {w.track for w in ws.of("train")}
    valid = {w.track for w in ws.of("valid")}
    assert train and valid and not train & valid
    assert ws.counts() == {"train": {"tracks": 30, "windows": 150}, "valid": {"tracks": 10, "windows": 50}}


def test_window_dataset_items():
    src = SyntheticSource(num_tracks=2, seed=0, track_duration=12.0)
    ws = make_windows(src.tracks(), 10.0, 5.0, valid_fraction=0.5)
    ds = WindowDataset(src, ws.windows, sample_rate=8000, channels=1)
    assert len(ds) == 2
    item = ds[0]
    assert item["mix"].shape == item["synth"].shape == (1, 80000)
    assert item["description"] == src.info(item["track"]).description
