"""Slakh2100 (and Slakh2100-redux, BabySlakh): synth stems chosen from ``metadata.yaml``.

::

    slakh2100_flac_redux/{train,validation,test}/TrackNNNNN/
        mix.flac  metadata.yaml  stems/S00.flac ...

A stem is a synth when its ``inst_class`` is "Synth Lead" or "Synth Pad" (General MIDI
programs 80-95). Those stems are summed into the synth target; the mix is ``mix.flac`` (the
sum of all stems), or the sum of the stem files when it is missing. A stem counts as present
when its file exists (``audio_rendered`` is unreliable in some releases). Tracks with no synth
stem are skipped and counted.
"""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from ..audio import AUDIO_EXTENSIONS, audio_info, load_audio
from ..download import confined
from ..errors import AudioError, DatasetError
from .tracks import TrackInfo, TrackSource

SYNTH_CLASSES = ("Synth Lead", "Synth Pad")
SYNTH_PROGRAMS = range(80, 96)
SPLIT_FOLDERS = {"train": "train", "validation": "valid", "test": "test"}


def is_synth_stem(stem: dict) -> bool:
    """True for a Slakh stem entry whose class or GM program is a synth lead or pad."""
    if stem.get("is_drum"):
        return False
    program = stem.get("program_num")
    return stem.get("inst_class") in SYNTH_CLASSES or (isinstance(program, int) and program in SYNTH_PROGRAMS)


def _stem_file(stems_dir: Path, key: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        path = stems_dir / f"{key}{ext}"
        if path.is_file():
            return path
    return None


class SlakhSource(TrackSource):
    """Slakh2100 tracks that contain at least one synth lead or pad.

    Args:
        root: the dataset folder: either holding ``train/``, ``validation/``, ``test/`` split
            folders, or holding ``TrackNNNNN`` folders directly.
        splits: which split folders to read (``omitted/`` is never read).
    """

    kind = "slakh"

    def __init__(self, root: str | Path, splits: tuple[str, ...] = ("train", "validation", "test")):
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder — check the path (is Google Drive mounted?)")
        folders = [(self.root / s, SPLIT_FOLDERS[s]) for s in splits if (self.root / s).is_dir()]
        if not folders:
            folders = [(self.root, None)]
        self._files: dict[str, tuple[Path | None, list[Path], list[Path]]] = {}
        for folder, split in folders:
            for track_dir in sorted(p for p in folder.iterdir() if (p / "metadata.yaml").is_file()):
                self._add(track_dir, split)
        if not self._tracks:
            raise DatasetError(f"{self.root}: no Slakh track with a synth stem found — expected "
                               "TrackNNNNN/metadata.yaml with 'Synth Lead'/'Synth Pad' stems"
                               + (" — " + "; ".join(self.problems.lines(3)) if self.problems.groups else ""))

    def _add(self, track_dir: Path, split: str | None) -> None:
        meta_path = track_dir / "metadata.yaml"
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            self.problems.add("unreadable metadata.yaml (skipped)", f"{meta_path}: {str(exc).splitlines()[0]}")
            return
        try:  # audio_dir comes from the file: it must stay inside the track folder
            stems_dir = confined(track_dir, str(meta.get("audio_dir") or "stems"))
        except DatasetError as exc:
            self.problems.add("unsafe audio_dir in metadata.yaml (skipped)", str(exc))
            return
        synth, other, synth_names, other_names = [], [], [], []
        for key, stem in sorted((meta.get("stems") or {}).items()):
            path = _stem_file(stems_dir, key)
            if path is None or not isinstance(stem, dict):
                continue
            name = stem.get("midi_program_name") or stem.get("inst_class") or key
            if is_synth_stem(stem):
                synth.append(path)
                synth_names.append(f"{stem.get('inst_class', 'synth').lower()} ({name})")
            else:
                other.append(path)
                other_names.append(str(stem.get("inst_class") or name).lower())
        if not synth:
            self.problems.add("no synth lead/pad stem (skipped)", track_dir.name)
            return
        mix_path = next((track_dir / f"mix{e}" for e in AUDIO_EXTENSIONS if (track_dir / f"mix{e}").is_file()), None)
        try:
            duration = min(audio_info(p).duration for p in ([mix_path] if mix_path else []) + synth)
        except AudioError as exc:
            self.problems.add("unreadable audio (skipped)", str(exc))
            return
        accomp = sorted(set(other_names))
        description = ", ".join(synth_names) + (f"; with {', '.join(accomp)}" if accomp else "")
        self._files[track_dir.name] = (mix_path, synth, other)
        self._tracks[track_dir.name] = TrackInfo(track_dir.name, duration, description, split)

    def _load(self, info: TrackInfo, sample_rate: int, offset: float,
              duration: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        mix_path, synth_paths, other_paths = self._files[info.name]
        span = info.duration - offset if duration is None else duration

        def total(paths: list[Path]) -> torch.Tensor:
            wavs = [load_audio(p, sample_rate, None, offset, span) for p in paths]
            length = min(w.shape[-1] for w in wavs)
            return sum(w[..., :length] for w in wavs)

        synth = total(synth_paths)
        mix = load_audio(mix_path, sample_rate, None, offset, span) if mix_path else total(synth_paths + other_paths)
        return mix, synth
