"""MUSDB18 / MUSDB18-HQ through the ``musdb`` package.

MUSDB has no synth stem: the target is configurable and defaults to ``other`` (everything that
is not vocals, drums or bass — where synths, keys and guitars live); the accompaniment is
``mix - target``. The dataset's own validation list (``musdb``'s ``validation_tracks``) and
its ``test`` subset become split hints.

``download=True`` fetches musdb's 7-second previews (MP4 stems, needs FFmpeg) through
:func:`synthgen_lib.archives.download_dataset` (resumable, checked): shorter than the default
10-second window, which :func:`synthgen_lib.prepare.prepare` reports. ``synthgen download
musdb-sample`` / ``musdb-hq`` fetch either set into a folder of your choice. ``musdb`` calls
``ffprobe`` on every track when it builds its list, so FFmpeg must be installed even for the
WAV (HQ) layout.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio, resample
from ..errors import DatasetError
from .tracks import TrackInfo, TrackSource

TARGETS = ("other", "vocals", "drums", "bass")
PREVIEW_ROOT = "~/MUSDB18/MUSDB18-7"  # where ``download=True`` puts the previews without a root (as musdb does)
GET_IT = ("get it with 'synthgen download musdb-sample --output DIR' (7-second previews) or 'synthgen download "
          "musdb-hq --output DIR' (full songs, about 23 GB), then use --root DIR")


class MusdbSource(TrackSource):
    """Tracks of MUSDB18 with ``target`` as the "synth" stem.

    Args:
        root: the dataset folder (``train/`` and ``test/`` inside). ``None`` uses
            ``$MUSDB_PATH`` or, with ``download=True``, ``~/MUSDB18/MUSDB18-7``.
        target: which MUSDB stem plays the synth's role.
        is_wav: the MUSDB18-HQ layout (``<subset>/<track>/mixture.wav`` + one WAV per stem);
            ``False`` for the ``.stem.mp4`` files; ``None`` tells them apart by the files.
        subsets: which of ``train`` and ``test`` to use.
        download: fetch the 7-second previews into ``root`` when it has no ``train/`` folder.
    """

    kind = "musdb"

    def __init__(self, root: str | Path | None = None, target: str = "other", is_wav: bool | None = None,
                 subsets: tuple[str, ...] = ("train", "test"), download: bool = False):
        super().__init__()
        if target not in TARGETS:
            raise DatasetError(f"MUSDB target must be one of {', '.join(TARGETS)}, got {target!r}")
        if root is None and not download:
            if not os.environ.get("MUSDB_PATH"):
                raise DatasetError("the musdb source needs a MUSDB18 folder (--root DIR holding train/ and test/) "
                                   f"— {GET_IT}; or set MUSDB_PATH")
            root = os.environ["MUSDB_PATH"]
        root = Path(root if root is not None else PREVIEW_ROOT).expanduser()
        if download and not (root / "train").is_dir():
            from ..archives import download_dataset

            download_dataset("musdb-sample", root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder — check the path (is Google Drive mounted?), or {GET_IT}")
        if is_wav is None:
            is_wav = not any(next((root / s).glob("*.stem.mp4"), None) for s in subsets)
        if shutil.which("ffprobe") is None:
            raise DatasetError("the musdb package needs FFmpeg's ffprobe on the PATH — "
                               "install it (Debian/Colab: apt-get install ffmpeg)")
        import musdb  # imported here: it pulls in stempeg and ffmpeg-python

        self.target = target
        self.is_wav = is_wav
        try:
            self.db = musdb.DB(root=str(root), subsets=list(subsets), is_wav=is_wav)
        except Exception as exc:  # musdb raises bare RuntimeError/OSError on bad folders
            raise DatasetError(f"{root}: musdb could not open it ({exc})") from None
        if not self.db.tracks:
            layout = "<subset>/<track>/mixture.wav" if self.is_wav else "<subset>/*.stem.mp4"
            raise DatasetError(f"{root}: no MUSDB tracks found — expected {layout} under "
                               f"{' or '.join(subsets)}/; {GET_IT}")
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
