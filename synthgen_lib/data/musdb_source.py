"""MUSDB18 / MUSDB18-HQ through the ``musdb`` package.

MUSDB has no synth stem: the target is configurable and defaults to ``other`` (everything that
is not vocals, drums or bass — where synths, keys and guitars live); the accompaniment is
``mix - target``. The dataset's own validation list (``musdb``'s ``validation_tracks``) and
its ``test`` subset become split hints.

``download=True`` makes ``musdb`` fetch its 7-second previews (MP4 stems, needs FFmpeg):
shorter than the default 10-second window, which :func:`synthgen_lib.prepare.prepare` reports.
``musdb`` calls ``ffprobe`` on every track when it builds its list, so FFmpeg must be installed
even for the WAV (HQ) layout.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio, resample
from ..errors import DatasetError
from .tracks import TrackInfo, TrackSource

TARGETS = ("other", "vocals", "drums", "bass")


class MusdbSource(TrackSource):
    """Tracks of MUSDB18 with ``target`` as the "synth" stem.

    Args:
        root: the dataset folder (``train/`` and ``test/`` inside). ``None`` uses
            ``$MUSDB_PATH`` or, with ``download=True``, musdb's preview folder.
        target: which MUSDB stem plays the synth's role.
        is_wav: the MUSDB18-HQ layout (``<subset>/<track>/mixture.wav`` + one WAV per stem);
            ``False`` for the ``.stem.mp4`` files.
        subsets: which of ``train`` and ``test`` to use.
        download: fetch the 7-second previews when ``root`` holds nothing.
    """

    kind = "musdb"

    def __init__(self, root: str | Path | None = None, target: str = "other", is_wav: bool = True,
                 subsets: tuple[str, ...] = ("train", "test"), download: bool = False):
        super().__init__()
        if target not in TARGETS:
            raise DatasetError(f"MUSDB target must be one of {', '.join(TARGETS)}, got {target!r}")
        if shutil.which("ffprobe") is None:
            raise DatasetError("the musdb package needs FFmpeg's ffprobe on the PATH — "
                               "install it (Debian/Colab: apt-get install ffmpeg)")
        if root is not None and not Path(root).is_dir() and not download:
            raise DatasetError(f"{root}: no such folder — check the path (is Google Drive mounted?)")
        import musdb  # imported here: it pulls in stempeg and ffmpeg-python

        self.target = target
        self.is_wav = is_wav and not download  # the previews are MP4 stems
        kwargs = dict(subsets=list(subsets), is_wav=self.is_wav, download=download)
        if root is not None:
            kwargs["root"] = str(root)
        try:
            self.db = musdb.DB(**kwargs)
        except Exception as exc:  # musdb raises bare RuntimeError/OSError on bad folders
            raise DatasetError(f"{root}: musdb could not open it ({exc})") from None
        if not self.db.tracks:
            layout = "<subset>/<track>/mixture.wav" if self.is_wav else "<subset>/*.stem.mp4"
            raise DatasetError(f"{root}: no MUSDB tracks found — expected {layout} under "
                               f"{' or '.join(subsets)}/")
        valid = set(self.db.setup.get("validation_tracks", []))
        self._by_name = {}
        for track in self.db.tracks:
            if target not in track.sources:
                self.problems.add(f"no '{target}' stem (skipped)", track.name)
                continue
            split = "test" if track.subset == "test" else ("valid" if track.name in valid else "train")
            self._by_name[track.name] = track
            self._tracks[track.name] = TrackInfo(
                name=track.name, duration=float(track.duration), split=split,
                description=f"{target} stem of '{track.name}' (MUSDB18 {track.subset})")

    def _load(self, info: TrackInfo, sample_rate: int, offset: float,
              duration: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        track = self._by_name[info.name]
        if self.is_wav:  # read the WAVs ourselves: partial reads, no FFmpeg round trip
            mix = load_audio(track.path, sample_rate, None, offset, duration)
            synth = load_audio(track.sources[self.target].path, sample_rate, None, offset, duration)
            return mix, synth
        track.chunk_start, track.chunk_duration = offset, duration
        mix = torch.from_numpy(np.asarray(track.audio, dtype=np.float32).T.copy())
        synth = torch.from_numpy(np.asarray(track.targets[self.target].audio, dtype=np.float32).T.copy())
        rate = int(track.rate)
        return resample(mix, rate, sample_rate), resample(synth, rate, sample_rate)
