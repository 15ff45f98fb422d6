"""The user's own dataset: ``mix/``, ``synth/`` and ``description/`` folders paired by name.

::

    dataset/
      mix/song_a.wav          the full mix
      synth/song_a.flac       its synth stem (any audio format; the name pairs it)
      description/song_a.txt  optional text, e.g. "bright detuned saw lead"
      synth/song_a/pad.wav    optional: the synth stem part by part (what text queries train on),
      description/song_a/pad.txt   each part with its own description, e.g. "warm pad, low register";
                              without synth/song_a.flac the parts' sum is the synth stem
      splits.json             optional {"song_a": "valid", ...}: tracks the dataset holds out

Files are paired by their name without the extension. Anything that cannot be paired is not
used and is listed in :attr:`FolderSource.problems` (and in ``synthgen prepare``'s report).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..audio import audio_info, is_audio_file, load_audio
from ..errors import AudioError, DatasetError
from .tracks import DEFAULT_DESCRIPTION, PartInfo, TrackInfo, TrackSource


SPLITS_FILE = "splits.json"  # {track name: split} of the tracks a dataset holds out itself


def _by_name(folder: Path, keep, problems, kind: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not keep(path):
            continue
        if path.stem in found:
            problems.add(f"{kind} files with the same name", f"{found[path.stem].name} and {path.name}")
            continue
        found[path.stem] = path
    return found


class FolderSource(TrackSource):
    """Paired tracks from a ``mix/``, ``synth/``, ``description/`` folder.

    Args:
        root: the dataset folder.
        strict: raise on the first unreadable or unpaired file instead of skipping it.
    """

    kind = "folder"

    def __init__(self, root: str | Path, strict: bool = False):
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder — check the path (is Google Drive mounted?)")
        if not (self.root / "mix").is_dir() or not (self.root / "synth").is_dir():
            raise DatasetError(f"{self.root}: expected 'mix/' and 'synth/' folders inside "
                               "(and optionally 'description/'), paired by file name")
        p = self.problems
        self.mix_files = _by_name(self.root / "mix", is_audio_file, p, "mix")
        self.synth_files = _by_name(self.root / "synth", is_audio_file, p, "synth")
        self.description_files = _by_name(self.root / "description",
                                          lambda f: f.suffix.lower() == ".txt", p, "description")
        self.part_files = {d.name: files for d in sorted((self.root / "synth").iterdir())
                           if d.is_dir() and not d.name.startswith(".")
                           and (files := _by_name(d, is_audio_file, p, f"{d.name} part"))}
        self.summed = {name for name in self.part_files if name not in self.synth_files}  # synth = sum of parts
        self.synth_files.update({name: self.root / "synth" / name for name in self.summed})
        for name in sorted(set(self.mix_files) - set(self.synth_files)):
            p.add("mix without synth (skipped)", self.mix_files[name].name)
        for name in sorted(set(self.synth_files) - set(self.mix_files)):
            p.add("synth without mix (skipped)", self.synth_files[name].name)
        for name in sorted(set(self.description_files) - set(self.mix_files) - set(self.synth_files)):
            p.add("description without audio (ignored)", self.description_files[name].name)
        if strict and p.groups:
            raise DatasetError(f"{self.root}: " + "; ".join(p.lines(limit=3)))

        splits = self._splits()
        for name in sorted(set(self.mix_files) & set(self.synth_files)):
            try:
                mix = audio_info(self.mix_files[name])
                parts = {part: audio_info(path).duration for part, path in self.part_files.get(name, {}).items()}
                synth = max(parts.values()) if name in self.summed else audio_info(self.synth_files[name]).duration
            except AudioError as exc:
                if strict:
                    raise
                p.add("unreadable audio (skipped)", str(exc))
                continue
            if abs(mix.duration - synth) > 0.05:
                p.add("mix and synth lengths differ (using the shorter)",
                      f"{name}: mix {mix.duration:.2f} s, synth {synth:.2f} s")
            description = self._description(name)
            self._tracks[name] = TrackInfo(name=name, duration=min(mix.duration, synth), description=description,
                                           split=splits.get(name), parts=self._parts(name, parts, description))
        if not self._tracks and not strict:
            raise DatasetError(f"{self.root}: no paired mix/synth files found"
                               + (" — " + "; ".join(p.lines(limit=3)) if p.groups else ""))

    def _splits(self) -> dict[str, str]:
        """The dataset's own split of some tracks (``splits.json``, written by ``synthgen
        prepare`` for sources that hold tracks out themselves); other tracks get none."""
        path = self.root / SPLITS_FILE
        if not path.is_file():
            return {}
        try:
            splits = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise DatasetError(f"{path}: not a valid splits file — delete it to split the tracks at random") from None
        if not isinstance(splits, dict) or not all(v in ("train", "valid", "test") for v in splits.values()):
            raise DatasetError(f"{path}: expected {{track name: 'train', 'valid' or 'test'}} — delete it to split "
                               "the tracks at random")
        return splits

    def _description(self, name: str) -> str:
        path = self.description_files.get(name)
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path else ""
        if not text:
            self.problems.add(f"no description (using '{DEFAULT_DESCRIPTION}')", name)
            return DEFAULT_DESCRIPTION
        return " ".join(text.split())

    def _parts(self, name: str, parts: dict[str, float], description: str) -> tuple[PartInfo, ...]:
        """The parts of track ``name``, each described by ``description/NAME/PART.txt`` (or, noted
        as a problem, by the first clause of the track's description)."""
        infos = []
        for part in sorted(parts):
            path = self.root / "description" / name / f"{part}.txt"
            text = " ".join(path.read_text(encoding="utf-8", errors="replace").split()) if path.is_file() else ""
            if not text:
                self.problems.add("synth part without a description (using the track's)", f"{name}/{part}")
                text = description.split(";")[0].strip()
            infos.append(PartInfo(part, text))
        return tuple(infos)

    def _load(self, info: TrackInfo, sample_rate: int, offset: float,
              duration: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        span = info.duration - offset if duration is None else duration
        mix = load_audio(self.mix_files[info.name], sample_rate, None, offset, span)
        if info.name in self.summed:
            parts = list(self._load_parts(info, sample_rate, offset, duration).values())
            synth = torch.zeros(max(p.shape[0] for p in parts), max(p.shape[-1] for p in parts))
            for part in parts:
                synth[:, :part.shape[-1]] += part  # a mono part plays in every channel
            return mix, synth
        return mix, load_audio(self.synth_files[info.name], sample_rate, None, offset, span)

    def _load_parts(self, info: TrackInfo, sample_rate: int, offset: float,
                    duration: float | None) -> dict[str, torch.Tensor]:
        span = info.duration - offset if duration is None else duration
        return {p.name: load_audio(self.part_files[info.name][p.name], sample_rate, None, offset, span)
                for p in info.parts}
