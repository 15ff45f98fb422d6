"""What every data source gives: a list of paired tracks and a way to load a piece of one.

A source (folder layout, MUSDB18, Slakh2100, synthetic) lists :class:`TrackInfo` records and
loads :class:`TrackAudio` — the mix and its synth stem, same rate, channels and length — for any
``(offset, duration)`` span, so training windows are read without decoding whole songs.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch

from ..audio import SAMPLE_RATE, convert_channels

DEFAULT_DESCRIPTION = "synthesizer"
"""Used when a track has no description; sources say when they fall back to it."""


@dataclass(frozen=True)
class PartInfo:
    """One synth part of a track whose synth stem is several parts (a pad under a lead).

    Attributes:
        name: unique within the track (``part1``, or the folder dataset's file name).
        description: what this part alone is, e.g. "warm detuned saw pad, low register".
    """

    name: str
    description: str


@dataclass(frozen=True)
class TrackInfo:
    """One paired track of a source.

    Attributes:
        name: unique within the source; used for pairing, splits and output folders.
        duration: playable length in seconds (the shorter of mix and synth).
        description: text describing the synth stem.
        split: the dataset's own split for this track (``"train"``, ``"valid"``, ``"test"``) or
            ``None`` when the dataset has none; see :func:`synthgen_lib.data.windows.split_tracks`.
        parts: the synth stem's parts, each with its own description, when the source knows them
            and there are two or more (empty: the synth is one part, described by ``description``).
    """

    name: str
    duration: float
    description: str = DEFAULT_DESCRIPTION
    split: str | None = None
    parts: tuple[PartInfo, ...] = ()

    def part_descriptions(self) -> list[str]:
        """What each synth part is: the parts' own descriptions, or for a one-part track the
        first clause of its description (the synth, without key, tempo and accompaniment)."""
        if self.parts:
            return [p.description for p in self.parts]
        return [self.description.split(";")[0].strip()]


@dataclass
class TrackAudio:
    """A span of a track: ``mix`` and ``synth`` float32 ``(channels, samples)``, same shape, and
    the synth's ``parts`` (name -> audio of that shape; summing to ``synth``) when the track has
    :attr:`TrackInfo.parts`."""

    name: str
    mix: torch.Tensor
    synth: torch.Tensor
    sample_rate: int
    description: str = DEFAULT_DESCRIPTION
    parts: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def residual(self) -> torch.Tensor:
        """Everything in the mix that is not the synth."""
        return self.mix - self.synth


class TrackSource(abc.ABC):
    """Base class of the data sources.

    Subclasses fill ``self._tracks`` (name -> :class:`TrackInfo`), note every file they skipped
    or fixed up in ``self.problems`` (a :class:`ProblemLog`), and implement :meth:`_load`.
    """

    kind = "source"

    def __init__(self) -> None:
        self._tracks: dict[str, TrackInfo] = {}
        self.problems = ProblemLog()

    def tracks(self) -> list[TrackInfo]:
        """All paired tracks, sorted by name."""
        return [self._tracks[k] for k in sorted(self._tracks)]

    def __len__(self) -> int:
        return len(self._tracks)

    def settings(self) -> dict[str, object]:
        """The settings, beyond the source's kind and folder, that decide what a track of a given
        name holds (a generator's track length, say); ``prepare`` resumes a folder only with the
        same ones. Empty for sources that read files."""
        return {}

    def info(self, name: str) -> TrackInfo:
        """The :class:`TrackInfo` of track ``name``."""
        try:
            return self._tracks[name]
        except KeyError:
            raise KeyError(f"no track named {name!r} in this {self.kind} source") from None

    def load(self, name: str, sample_rate: int = SAMPLE_RATE, channels: int | None = 2,
             offset: float = 0.0, duration: float | None = None) -> TrackAudio:
        """Load ``duration`` seconds (``None``: to the end) of track ``name`` from ``offset``.

        Returns mix and synth at ``sample_rate`` with ``channels`` channels, trimmed or
        zero-padded to the same length.
        """
        info = self.info(name)
        mix, synth = self._load(info, sample_rate, offset, duration)
        mix, synth = convert_channels(mix, channels), convert_channels(synth, channels)
        if duration is not None:
            length = int(round(duration * sample_rate))
        else:
            length = min(mix.shape[-1], synth.shape[-1])
        parts = self._load_parts(info, sample_rate, offset, duration) if info.parts else {}
        return TrackAudio(name=name, mix=_fit(mix, length), synth=_fit(synth, length),
                          sample_rate=sample_rate, description=info.description,
                          parts={k: _fit(convert_channels(v, channels), length) for k, v in parts.items()})

    @abc.abstractmethod
    def _load(self, info: TrackInfo, sample_rate: int, offset: float,
              duration: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mix, synth) ``(channels, samples)`` at ``sample_rate`` for the span."""

    def _load_parts(self, info: TrackInfo, sample_rate: int, offset: float,
                    duration: float | None) -> dict[str, torch.Tensor]:
        """The span of each of ``info.parts`` (sources whose tracks have parts implement it)."""
        raise NotImplementedError(f"the {self.kind} source lists parts of {info.name} but cannot load them")


def _fit(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad the last axis to ``length``."""
    if wav.shape[-1] >= length:
        return wav[..., :length].contiguous()
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))


@dataclass
class ProblemLog:
    """Collects one-line notes about skipped or fixed-up files, grouped by kind."""

    groups: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, item: str) -> None:
        self.groups.setdefault(kind, []).append(item)

    def lines(self, limit: int = 10) -> list[str]:
        """One line per kind: ``"kind (N): a, b, c, ... and M more"``."""
        out = []
        for kind, items in self.groups.items():
            shown = ", ".join(items[:limit])
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            out.append(f"{kind} ({len(items)}): {shown}{more}")
        return out
