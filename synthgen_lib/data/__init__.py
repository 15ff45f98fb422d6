"""Data sources (folder layout, MUSDB18, Slakh2100, synthetic, sampled) and training windows."""
from __future__ import annotations

from pathlib import Path

from ..errors import SynthGenError
from .folder import FolderSource
from .tracks import DEFAULT_DESCRIPTION, PartInfo, TrackAudio, TrackInfo, TrackSource
from .windows import Window, WindowDataset, WindowSet, make_windows, split_tracks, window_starts

SOURCES = ("synthetic", "sampled", "scores", "folder", "musdb", "slakh")


def open_source(kind: str, root: str | Path | None = None, *, num_tracks: int = 64, seed: int = 0,
                track_duration: float = 30.0, target: str = "other", download: bool = False,
                strict: bool = False, soundfont: str | Path | list | None = None,
                exclude: str | Path | list[str] | None = None, pieces: str = "all",
                valid_fraction: float = 0.1, synth_voices: str = "both", arrangement: str = "ensemble",
                workers: int = 1, two_parts: float | None = None, production: float = 0.0,
                samples: list[str | Path] | str | Path | None = None) -> TrackSource:
    """Open a data source by name.

    Args:
        kind: ``synthetic`` (rendered on demand), ``sampled`` (the synthetic scores played by a
            GM SoundFont through FluidSynth), ``scores`` (real pieces from score files or the
            music21 corpus, played as multitracks with a synth part; see :mod:`.scores`), ``folder`` (``mix/``, ``synth/``,
            ``description/``), ``musdb`` (MUSDB18-HQ WAV layout, or the previews with
            ``download=True``) or ``slakh`` (Slakh2100).
        root: the dataset folder (not used by ``synthetic``); for ``scores`` a folder of score
            files or ``music21``.
        num_tracks, seed, track_duration: the synthetic set's size, seed and track length.
        target: the MUSDB stem that plays the synth's role.
        download: MUSDB only: fetch musdb's 7-second previews.
        strict: folder only: fail on the first unpaired or unreadable file.
        soundfont: sampled and scores: the ``.sf2`` file (default: the installed GM
            SoundFont); scores also takes a list, one drawn per part.
        exclude, pieces, valid_fraction, synth_voices, arrangement: scores only: score paths or
            globs never to read (a file or a list), ``all``/``train``/``valid`` pieces, the share
            of pieces held out, which synth voices play (``both``, ``soundfont``,
            ``procedural``, ``lmms``, ``all``), and how pieces are arranged (``ensemble``, ``electronic``, ``both``).
        workers: scores only: processes that read the score files.
        two_parts: synthetic and sampled only: share of tracks with two synth parts (default
            :data:`.synthetic.TWO_PARTS`).
        production: synthetic, sampled and scores: share of tracks that go through a production
            chain (per-stem EQ, compression, saturation, reverb, width; bus compressor, limiter,
            MP3; :mod:`.production`).
        samples: scores only: folders of recorded instruments and drum kits (:mod:`.samples`)
            that play half the accompaniment parts and drums they have recordings for.
    """
    if isinstance(soundfont, (list, tuple)) and kind != "scores":
        if len(soundfont) > 1:
            raise SynthGenError(f"the {kind!r} source plays with one SoundFont, got {len(soundfont)}")
        soundfont = soundfont[0] if soundfont else None
    if two_parts is not None and kind not in ("synthetic", "sampled"):
        raise SynthGenError(f"the {kind!r} source takes its parts from its tracks: the share of two-part tracks "
                            "is for the synthetic and sampled sources")
    if production and kind not in ("synthetic", "sampled", "scores"):
        raise SynthGenError(f"the {kind!r} source reads finished mixes: a production chain is for the synthetic, "
                            "sampled and scores sources")
    if samples and kind != "scores":
        raise SynthGenError(f"the {kind!r} source plays no score parts: recorded instruments (--samples) are for the "
                            "scores source")
    if kind in ("synthetic", "sampled"):
        from .synthetic import TWO_PARTS, SyntheticSource

        return SyntheticSource(num_tracks=num_tracks, seed=seed, track_duration=track_duration,
                               soundfont=(soundfont or True) if kind == "sampled" else None,
                               two_parts=TWO_PARTS if two_parts is None else two_parts, production=production)
    if kind == "scores":
        from .scores import ScoresSource

        return ScoresSource(root or "music21", num_tracks=num_tracks, seed=seed, track_duration=track_duration,
                            soundfonts=soundfont, exclude=exclude, pieces=pieces, valid_fraction=valid_fraction,
                            synth_voices=synth_voices, arrangement=arrangement, workers=workers,
                            production=production, samples=samples)
    if kind != "musdb" and root is None:
        raise SynthGenError(f"the {kind!r} source needs a dataset folder (--root)")
    if kind == "folder":
        return FolderSource(root, strict=strict)
    if kind == "musdb":
        from .musdb_source import MusdbSource

        return MusdbSource(root, target=target, download=download)
    if kind == "slakh":
        from .slakh import SlakhSource

        return SlakhSource(root)
    raise SynthGenError(f"unknown source {kind!r}: choose one of {', '.join(SOURCES)}")


__all__ = [
    "DEFAULT_DESCRIPTION", "FolderSource", "PartInfo", "SOURCES", "TrackAudio", "TrackInfo", "TrackSource",
    "Window", "WindowDataset", "WindowSet", "make_windows", "open_source", "split_tracks",
    "window_starts",
]
