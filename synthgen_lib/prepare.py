"""``prepare``: list a source's tracks and windows, and write a dataset to the folder layout.

This is the one function behind ``synthgen prepare`` and the Encode Dataset notebook's first
step. With ``output`` it writes every track as ``output/mix/NAME.wav``,
``output/synth/NAME.wav`` and ``output/description/NAME.txt`` at the project rate (the
synthetic set is rendered; other sources are converted), and a synth of two or more parts also
part by part, as ``output/synth/NAME/PART.wav`` with ``output/description/NAME/PART.txt``
(what text queries train on), skipping tracks already written, so
an interrupted run resumes where it stopped. The report is also saved as
``output/prepare.json``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .audio import SAMPLE_RATE, save_audio
from .data import TrackSource, make_windows, open_source
from .data.folder import SPLITS_FILE
from .data.windows import WindowSet
from .errors import DatasetError, SynthGenError
from .fileio import write_text_atomic


@dataclass
class TrackRow:
    """One line of the report."""

    name: str
    duration: float
    split: str
    windows: int
    description: str


@dataclass
class PrepareReport:
    """What :func:`prepare` found (and wrote)."""

    source: str
    window: float
    hop: float
    sample_rate: int
    tracks: list[TrackRow]
    counts: dict[str, dict[str, int]]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output: str | None = None
    written: int = 0

    @property
    def total_windows(self) -> int:
        return sum(c["windows"] for c in self.counts.values())

    def format(self, max_tracks: int = 20) -> str:
        """The report as text: per-split totals, the first tracks, problems and notes."""
        lines = [f"source: {self.source} — {len(self.tracks)} tracks, "
                 f"{self.window:g} s windows every {self.hop:g} s, {self.sample_rate} Hz"]
        lines.append(f"{'split':<8}{'tracks':>8}{'windows':>9}{'minutes':>9}")
        for split, c in self.counts.items():
            minutes = sum(t.duration for t in self.tracks if t.split == split) / 60
            lines.append(f"{split:<8}{c['tracks']:>8}{c['windows']:>9}{minutes:>9.1f}")
        lines.append(f"{'track':<32}{'seconds':>8}{'split':>7}{'windows':>9}  description")
        for t in self.tracks[:max_tracks]:
            lines.append(f"{t.name[:31]:<32}{t.duration:>8.1f}{t.split:>7}{t.windows:>9}  {t.description[:60]}")
        if len(self.tracks) > max_tracks:
            lines.append(f"... and {len(self.tracks) - max_tracks} more tracks")
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        if self.output:
            lines.append(f"wrote {self.written} new tracks; dataset at {self.output} "
                         "(mix/, synth/, description/, prepare.json)")
        return "\n".join(lines)


def _short_note(source: TrackSource, ws: WindowSet) -> list[str]:
    if not ws.short_tracks:
        return []
    shortest = min(source.info(n).duration for n in ws.short_tracks)
    fit = max(1.0, math.floor(shortest))
    action = "zero-padded to one window each" if ws.short == "pad" else "skipped"
    return [f"{len(ws.short_tracks)} of {len(source)} tracks are shorter than the {ws.window:g} s "
            f"window (shortest {shortest:.1f} s) and were {action}; use --window {fit:g} "
            f"--hop {fit / 2:g} to cut them into full windows"
            + (" (musdb's download gives 7 s previews; the full dataset has whole songs)"
               if source.kind == "musdb" else "")]


SILENT_DB = -60.0  # a stem whose peak stays below this is "all silent"


def _write_track(source: TrackSource, name: str, out: Path, sample_rate: int, channels: int) -> list[str]:
    """Write one track; returns which of its stems are all silent."""
    audio = source.load(name, sample_rate, channels)
    floor = 10 ** (SILENT_DB / 20)
    silent = [stem for stem in ("mix", "synth")
              if not getattr(audio, stem).numel() or float(getattr(audio, stem).abs().max()) < floor]
    # One gain for mix and synth (only if needed) so that they still line up after quantisation.
    peak = float(torch.maximum(audio.mix.abs().max(), audio.synth.abs().max()))
    gain = 0.999 / peak if peak > 0.999 else 1.0
    save_audio(out / "synth" / f"{name}.wav", audio.synth * gain, sample_rate, clip="none")
    write_text_atomic(out / "description" / f"{name}.txt", audio.description + "\n")
    for part in source.info(name).parts:  # synth/NAME/PART.wav and description/NAME/PART.txt
        save_audio(out / "synth" / name / f"{part.name}.wav", audio.parts[part.name] * gain, sample_rate, clip="none")
        write_text_atomic(out / "description" / name / f"{part.name}.txt", part.description + "\n")
    save_audio(out / "mix" / f"{name}.wav", audio.mix * gain, sample_rate, clip="none")  # last: marks done
    return silent


def _write_tracks(source: TrackSource, names: list[str], out: Path, sample_rate: int, channels: int,
                  workers: int):
    """Write ``names`` (``workers`` processes at a time), yielding ``(name, silent stems or the
    error that stopped the track)`` as each finishes; every track is written whole or not at
    all, so a rerun resumes, and one track that cannot be made does not stop the others."""
    if workers <= 1 or len(names) < 2:
        for name in names:
            yield name, _try_track(source, name, out, sample_rate, channels)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    global _WORKER_SOURCE
    _WORKER_SOURCE = source  # inherited by the forked workers, not pickled per track
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {pool.submit(_try_track, None, name, out, sample_rate, channels): name for name in names}
            for future in as_completed(futures):
                yield futures[future], future.result()
    finally:
        torch.set_num_threads(torch_threads)
        _WORKER_SOURCE = None


_WORKER_SOURCE: TrackSource | None = None


def _try_track(source: TrackSource | None, name: str, out: Path, sample_rate: int,
               channels: int) -> list[str] | SynthGenError:
    """:func:`_write_track` (in a worker, of the inherited source), its error returned."""
    try:
        return _write_track(source or _WORKER_SOURCE, name, out, sample_rate, channels)
    except SynthGenError as exc:
        return exc


def _keep_splits(out: Path, source: TrackSource) -> None:
    """Record the tracks that come with the dataset's own split (MUSDB's test set, the scores
    source's held-out pieces) in ``splits.json``, which the folder source reads back, so training
    on the written folder holds out what the source held out. Merged with what earlier runs
    into the same folder recorded."""
    own = {t.name: t.split for t in source.tracks() if t.split is not None}
    if not own:
        return
    path = out / SPLITS_FILE
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_text_atomic(path, json.dumps({**known, **own}, indent=0, sort_keys=True))


def _check_output(out: Path, root: str | Path | None) -> None:
    """Refuse an output folder that would write over files ``prepare`` did not write: the dataset
    folder itself (or a folder inside it, or one holding it), or a folder with files in it and no
    ``prepare.json`` (the mark of a folder this function writes)."""
    target = out.resolve()
    if root is not None and Path(root).is_dir():
        data = Path(root).resolve()
        if target == data or data in target.parents or target in data.parents:
            raise DatasetError(f"{out}: the output folder overlaps the dataset folder {root} — writing there would "
                               "replace your own files; give --output a new folder outside it")
    if target.is_dir() and any(target.iterdir()) and not (target / "prepare.json").is_file():
        raise DatasetError(f"{out}: the output folder already holds files that 'synthgen prepare' did not write — "
                           "give a new or empty folder (prepare resumes only in folders it wrote)")


def _unset(value: object) -> object:
    return "unset" if value is None else value


def _check_same_dataset(out: Path, source: str, root: str | None, settings: dict) -> None:
    """Resume only the dataset a folder was started with: another source (or another root, or a
    generator with other :meth:`~.data.TrackSource.settings`) going into the same folder would mix
    two datasets without a word."""
    path = out / "prepare.json"
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an unreadable mark is rewritten; the tracks themselves are checked as they are read
    was = (before.get("source"), before.get("root", root))
    if was != (source, root):
        then = f"the {was[0]} source" + (f" ({was[1]})" if was[1] else "")
        now = f"the {source} source" + (f" ({root})" if root else "")
        raise DatasetError(f"{out}: this folder holds a dataset prepared from {then}, not {now} — give a new "
                           "--output folder (in the notebook: another DATASET name)")
    made = before.get("settings", settings)  # folders written before settings were recorded: not checked
    changed = [f"--{k.replace('_', '-')} {_unset(made.get(k))}, not {_unset(settings.get(k))}"
               for k in sorted(settings.keys() | made.keys()) if made.get(k) != settings.get(k)]
    if changed:
        raise DatasetError(f"{out}: this folder holds a dataset prepared with {'; '.join(changed)} — give a new "
                           "--output folder, or the settings it was made with")


def prepare(source: str | TrackSource = "synthetic", root: str | Path | None = None,
            output: str | Path | None = None, *, num_tracks: int = 64, track_duration: float = 30.0,
            seed: int = 0, window: float = 10.0, hop: float = 5.0, valid_fraction: float = 0.1,
            short: str = "pad", target: str = "other", download: bool = False,
            soundfont: str | Path | list | None = None, exclude: str | Path | list[str] | None = None,
            pieces: str = "all", synth_voices: str = "both", arrangement: str = "ensemble", workers: int = 1,
            two_parts: float | None = None, production: float = 0.0,
            samples: list[str | Path] | str | Path | None = None, sample_rate: int = SAMPLE_RATE, channels: int = 2,
            progress: bool = True) -> PrepareReport:
    """List a dataset's tracks, windows and split; optionally write it in the folder layout.

    Args:
        source: ``synthetic``, ``sampled``, ``scores``, ``folder``, ``musdb``, ``slakh`` or an
            open :class:`TrackSource`.
        root: the dataset folder (not for ``synthetic`` and ``sampled``); for ``scores`` a
            folder of score files or ``music21`` (the default).
        output: write every track here as ``mix/``, ``synth/``, ``description/`` WAV/text at
            ``sample_rate``; tracks already there are kept (resume).
        num_tracks, track_duration, seed: the synthetic set's size, track length and seed.
        window, hop: window length and hop in seconds.
        valid_fraction: share of tracks (without a dataset split) held out for validation.
        short: tracks shorter than a window are zero-padded (``pad``) or dropped (``skip``).
        target: MUSDB stem used as the synth.
        download: MUSDB only: fetch musdb's 7-second previews.
        soundfont: ``sampled`` and ``scores``: the GM ``.sf2`` file (default: the installed
            one); ``scores`` takes a list too, one drawn per part.
        exclude: ``scores`` only: a file of score paths or globs never to read (or a list).
        pieces: ``scores`` only: ``all``, or only the ``train`` or ``valid`` pieces.
        synth_voices: ``scores`` only: ``both`` (SoundFont and procedural), ``soundfont``,
            ``procedural``, ``lmms`` (LMMS synth-engine presets) or ``all`` three.
        arrangement: ``scores`` only: ``ensemble`` (a synth among acoustic instruments),
            ``electronic`` (mostly synths, with drums) or ``both``.
        workers: tracks written in parallel (processes; rendered sources gain most), and score
            files read in parallel.
        two_parts: ``synthetic`` and ``sampled`` only: the share of tracks whose synth has two
            parts (``None``: :data:`.data.synthetic.TWO_PARTS`); a folder resumes only with the
            share it was started with.
        production: ``synthetic``, ``sampled`` and ``scores``: the share of tracks that go
            through a production chain (:mod:`.data.production`); a folder resumes only with the
            share it was started with.
        samples: ``scores`` only: folders of recorded instruments and drum kits
            (:mod:`.data.samples`) that play half the accompaniment parts and drums they have
            recordings for.
        sample_rate, channels: format of the written files.
        progress: show a progress bar while writing.
    """
    if output is not None:
        _check_output(Path(output), root)
    src = source if isinstance(source, TrackSource) else open_source(
        source, root, num_tracks=num_tracks, seed=seed, track_duration=track_duration,
        target=target, download=download, soundfont=soundfont, exclude=exclude, pieces=pieces,
        valid_fraction=valid_fraction, synth_voices=synth_voices, arrangement=arrangement,
        workers=workers, two_parts=two_parts, production=production, samples=samples)
    ws = make_windows(src.tracks(), window, hop, valid_fraction, seed, short)
    per_track = {}
    for w in ws.windows:
        per_track[w.track] = per_track.get(w.track, 0) + 1
    rows = [TrackRow(t.name, round(t.duration, 3), ws.splits[t.name], per_track.get(t.name, 0),
                     t.description) for t in src.tracks()]
    report = PrepareReport(source=src.kind, window=window, hop=hop, sample_rate=sample_rate,
                           tracks=rows, counts=ws.counts(), problems=src.problems.lines(),
                           notes=_short_note(src, ws))
    if output is not None:
        out = Path(output)
        origin = {"root": None if root is None else str(Path(root).expanduser().resolve()), "settings": src.settings()}
        _check_same_dataset(out, report.source, origin["root"], origin["settings"])
        if not (out / "prepare.json").is_file():  # marks the folder as ours before the first track
            write_text_atomic(out / "prepare.json", json.dumps({**asdict(report), **origin}, indent=1))
        todo = [t.name for t in rows if not (out / "mix" / f"{t.name}.wav").is_file()]
        silent: dict[str, list[str]] = {"mix": [], "synth": []}
        failed = []
        for name, stems in tqdm(_write_tracks(src, todo, out, sample_rate, channels, workers), total=len(todo),
                                desc="writing tracks", disable=not progress or not todo):
            if isinstance(stems, SynthGenError):
                failed.append(str(stems))
                continue
            for stem in stems:
                silent[stem].append(name)
        for stem, names in silent.items():
            if names:
                report.notes.append(f"{len(names)} track(s) with an all-silent {stem} stem (peak below {SILENT_DB:g} "
                                    f"dBFS): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} — kept, as "
                                    "examples without a synth; remove them if the export went wrong")
        report.problems += [f"track not written: {error}" for error in failed]
        report.output, report.written = str(out), len(todo) - len(failed)
        write_text_atomic(out / "prepare.json", json.dumps({**asdict(report), **origin}, indent=1))
        _keep_splits(out, src)
    return report
