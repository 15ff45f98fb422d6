"""Slakh2100 (and Slakh2100-redux, BabySlakh): synth stems chosen from ``metadata.yaml``.

::

    slakh2100_flac_redux/{train,validation,test}/TrackNNNNN/
        mix.flac  metadata.yaml  stems/S00.flac ...

A stem is a synth when its ``inst_class`` is "Synth Lead" or "Synth Pad" (General MIDI
programs 80-95). Those stems are summed into the synth target; the mix is ``mix.flac`` (the
sum of all stems), or the sum of the stem files when it is missing. A stem counts as present
when its file exists (``audio_rendered`` is unreliable in some releases). Tracks with no synth
stem are skipped and counted.

:func:`unpack_slakh` writes this layout from the published archives (Slakh2100-redux,
BabySlakh) read as a stream: the first N tracks with a synth stem, optionally only their synth
stems, without the MIDI files — so a usable subset never needs the whole 100 GB.
"""
from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path, PurePosixPath

import torch
import yaml

from ..archives import extract_tar_member, is_junk
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
        mix_path = next((track_dir / f"mix{e}" for e in AUDIO_EXTENSIONS if (track_dir / f"mix{e}").is_file()), None)
        synth, other, synth_names, other_names = [], [], [], []
        for key, stem in sorted((meta.get("stems") or {}).items()):
            path = _stem_file(stems_dir, key)
            if not isinstance(stem, dict):
                continue
            if path is None:  # a stem left out (e.g. by a synth-only download) is still heard in the mix
                if mix_path and not is_synth_stem(stem) and stem.get("audio_rendered", True):
                    other_names.append(str(stem.get("inst_class") or key).lower())
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


_TRACK = re.compile(r"Track\d+$")


def _place(name: str) -> tuple[str | None, str, tuple[str, ...]] | None:
    """``(split folder or None, track, path inside the track)`` of an archive member, or
    ``None`` for a member outside any ``TrackNNNNN`` folder."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    for i, part in enumerate(parts):
        if _TRACK.match(part):
            split = parts[i - 1] if i and parts[i - 1] in (*SPLIT_FOLDERS, "omitted") else None
            return split, part, parts[i + 1:]
    return None


def _wanted(inside: tuple[str, ...]) -> bool:
    """The files :class:`SlakhSource` reads: ``metadata.yaml``, ``mix.*`` and the stems (no MIDI)."""
    if len(inside) == 1:
        return inside[0] == "metadata.yaml" or PurePosixPath(inside[0]).stem == "mix"
    return len(inside) > 1 and inside[0] != "MIDI" and not inside[-1].endswith(".mid")


def _finish(track: Path, final: Path, synth_only: bool) -> bool:
    """Move a fully read track into place if it has a synth stem (dropping its other stems with
    ``synth_only`` when a mix keeps them audible); otherwise delete it. Returns whether it was kept."""
    try:
        meta = yaml.safe_load((track / "metadata.yaml").read_text(encoding="utf-8")) or {}
        stems_dir = confined(track, str(meta.get("audio_dir") or "stems"))
        stems = {k: v for k, v in (meta.get("stems") or {}).items() if isinstance(v, dict)}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, DatasetError):
        stems, stems_dir = {}, track
    synth = {key for key, stem in stems.items() if is_synth_stem(stem) and _stem_file(stems_dir, key)}
    if not synth:
        shutil.rmtree(track)
        return False
    if synth_only and any((track / f"mix{e}").is_file() for e in AUDIO_EXTENSIONS):
        for path in stems_dir.iterdir():
            if path.is_file() and path.stem not in synth:
                path.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    track.replace(final)
    return True


def unpack_slakh(tar: tarfile.TarFile, dest: str | Path, tracks: int | None = None, synth_only: bool = False,
                 progress: bool = False) -> int:
    """Unpack the Slakh tracks of an archive read as a stream into the layout :class:`SlakhSource`
    reads; returns the number of tracks in ``dest``.

    Only ``metadata.yaml``, ``mix.*`` and the stems are written (MIDI files and ``omitted/``
    are skipped); a track without a synth lead/pad stem is dropped and not counted. Tracks
    already in ``dest`` are kept and skipped, so an interrupted run continues.

    Args:
        tar: the archive (``slakh2100_flac_redux.tar.gz``, ``babyslakh_16k.tar.gz``) opened
            with :func:`synthgen_lib.archives.tar_stream`.
        dest: the dataset folder.
        tracks: stop reading after this many tracks. They are written straight under ``dest``
            (no split folders: a prefix of the archive may all be ``train``, and
            ``--valid-fraction`` then holds some out); ``None`` keeps every track in its split
            folder.
        synth_only: keep only the synth stems (the mix still has the whole arrangement).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    incoming = dest / ".incoming"
    shutil.rmtree(incoming, ignore_errors=True)  # a track cut short by an interruption
    done = {p.name for p in [*dest.glob("Track*"), *dest.glob("*/Track*")] if (p / "metadata.yaml").is_file()}
    if tracks is not None and len(done) >= tracks:
        return len(done)
    current: tuple[str | None, str] | None = None
    with tqdm(total=tracks, initial=len(done), desc="slakh tracks", unit=" tracks", disable=not progress) as bar:
        def finish() -> None:
            split, name = current
            final = dest / name if tracks is not None or split is None else dest / split / name
            if _finish(incoming / name, final, synth_only):
                done.add(name)
                bar.update()

        for member in tar:
            place = _place(member.name)
            if place is None or place[0] == "omitted" or is_junk(member.name):
                continue
            split, name, inside = place
            if current is not None and current[1] != name:
                finish()
                current = None
            if tracks is not None and len(done) >= tracks:
                break  # stop reading: the rest of the archive is never downloaded
            if name in done or not _wanted(inside) or not (member.isfile() or member.issym() or member.islnk()):
                continue
            current = (split, name)
            extract_tar_member(tar, member, incoming / name, "/".join(inside))
        if current is not None and (tracks is None or len(done) < tracks):
            finish()
    shutil.rmtree(incoming, ignore_errors=True)
    return len(done)
