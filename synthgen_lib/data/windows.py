"""Training windows: tracks cut into fixed-length windows, split into train/valid by track.

The split is by track, never by window, so no window of a validation track is ever trained
on. Tracks whose dataset has its own split (MUSDB's validation list, Slakh's folders) keep it;
the others are shuffled with a seed and a fraction goes to validation. Everything is
deterministic for a given set of track names, settings and seed.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from ..audio import SAMPLE_RATE
from ..errors import SynthGenError
from .tracks import TrackInfo, TrackSource

SPLITS = ("train", "valid", "test")
SHORT_POLICIES = ("pad", "skip")


@dataclass(frozen=True)
class Window:
    """``length`` seconds of ``track`` from ``start``; past the track's end it is silence."""

    track: str
    start: float
    length: float
    split: str


def window_starts(duration: float, window: float = 10.0, hop: float = 5.0,
                  short: str = "pad") -> list[float]:
    """Start times (seconds) of the windows that fit in ``duration`` seconds.

    Windows start every ``hop`` seconds and end inside the track: a 30 s track gives 5
    windows of 10 s with a 5 s hop. A track shorter than one window gives one zero-padded
    window (``short="pad"``) or none (``short="skip"``).
    """
    if window <= 0 or hop <= 0:
        raise SynthGenError(f"window and hop must be positive, got window={window}, hop={hop}")
    if short not in SHORT_POLICIES:
        raise SynthGenError(f"short must be 'pad' or 'skip', got {short!r}")
    if duration < window:
        return [0.0] if short == "pad" and duration > 0 else []
    count = math.floor((duration - window) / hop + 1e-9) + 1
    return [round(k * hop, 6) for k in range(count)]


def split_tracks(tracks: list[TrackInfo], valid_fraction: float = 0.1, seed: int = 0) -> dict[str, str]:
    """Assign each track to ``train``, ``valid`` or ``test``.

    Tracks with a dataset split keep it. Of the rest, ``round(valid_fraction * n)`` go to
    validation (at least one when ``valid_fraction > 0`` and there are two or more), chosen by
    shuffling the sorted names with ``seed``.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise SynthGenError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    splits = {t.name: t.split for t in tracks if t.split in SPLITS}
    free = sorted(t.name for t in tracks if t.name not in splits)
    random.Random(seed).shuffle(free)
    n_valid = round(valid_fraction * len(free))
    if valid_fraction > 0 and len(free) >= 2:
        n_valid = min(max(n_valid, 1), len(free) - 1)
    for i, name in enumerate(free):
        splits[name] = "valid" if i < n_valid else "train"
    return splits


@dataclass
class WindowSet:
    """The windows of a source, with the split of every track and the short tracks."""

    windows: list[Window]
    splits: dict[str, str]
    window: float
    hop: float
    short: str
    short_tracks: list[str] = field(default_factory=list)

    def of(self, split: str) -> list[Window]:
        """The windows of one split."""
        return [w for w in self.windows if w.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {"tracks": n, "windows": n}}`` for the splits that have tracks."""
        tracks = Counter(self.splits.values())
        windows = Counter(w.split for w in self.windows)
        return {s: {"tracks": tracks[s], "windows": windows[s]} for s in SPLITS if tracks[s]}


def make_windows(tracks: list[TrackInfo], window: float = 10.0, hop: float = 5.0,
                 valid_fraction: float = 0.1, seed: int = 0, short: str = "pad") -> WindowSet:
    """Cut ``tracks`` into windows and split them by track (see :func:`split_tracks`)."""
    splits = split_tracks(tracks, valid_fraction, seed)
    windows, short_tracks = [], []
    for t in sorted(tracks, key=lambda t: t.name):
        if t.duration < window:
            short_tracks.append(t.name)
        for start in window_starts(t.duration, window, hop, short):
            windows.append(Window(t.name, start, window, splits[t.name]))
    return WindowSet(windows, splits, window, hop, short, short_tracks)


class WindowDataset(Dataset):
    """A torch dataset of windows: item ``i`` is a dict with ``mix`` and ``synth``
    ``(channels, samples)``, ``description``, ``track`` and ``start``.
    """

    def __init__(self, source: TrackSource, windows: list[Window], sample_rate: int = SAMPLE_RATE,
                 channels: int = 2):
        self.source, self.windows = source, windows
        self.sample_rate, self.channels = sample_rate, channels

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        w = self.windows[i]
        audio = self.source.load(w.track, self.sample_rate, self.channels, w.start, w.length)
        return {"mix": audio.mix, "synth": audio.synth, "description": audio.description,
                "track": w.track, "start": torch.tensor(w.start)}
