"""``separate``: the synth stem of a whole song, any length, rate and channel count.

The song is cut into overlapping segments, separated in batches, and put back together with
linear cross-fades normalised by the summed fade weights, so the seams are smooth and a model
that returns its input reproduces the song exactly. Audio at another rate is resampled to the
model's rate and back, and the result has exactly the input's length and channels.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .audio import resample
from .device import default_device
from .fileio import write_text_atomic

# Shorter segments than this leave a spectrogram model too few frames to read; longer ones
# only cost memory (long files are streamed in blocks anyway).
MIN_SEGMENT, MAX_SEGMENT = 0.5, 300.0
CHANNEL_GROUP = 2  # channels separated together (a 256-channel file goes two by two)
BATCH_SECONDS = 40.0  # most seconds of audio per channel in one forward pass


@dataclass
class Separation:
    """``synth`` and ``residual`` (= mix - synth), shaped like the input mix."""

    synth: torch.Tensor
    residual: torch.Tensor
    sample_rate: int

    def save(self, folder: str | Path, bits: int = 32) -> Path:
        """Write ``folder/synth.wav`` and ``folder/residual.wav`` (float by default, so that
        synth + residual is exactly the mix); returns ``folder``."""
        from .audio import save_stems

        return save_stems(folder, {"synth": self.synth, "residual": self.residual}, self.sample_rate, bits)


def _fade_weights(length: int, fade: int, device) -> torch.Tensor:
    i = torch.arange(length, device=device, dtype=torch.float32)
    if fade <= 0:
        return torch.ones(length, device=device)
    return torch.minimum(torch.ones((), device=device), torch.minimum(i + 1, length - i) / (fade + 1))


Progress = bool | Callable[[int, int], None]  # a progress bar, or a function told (done, total)


def overlap_add(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, segment: int,
                overlap: float = 0.25, batch_size: int = 4, progress: Progress = False) -> torch.Tensor:
    """Apply ``fn`` to overlapping segments of ``x`` ``(channels, samples)`` and cross-fade.

    ``fn`` maps ``(batch, channels, segment)`` to the same shape. Segments start every
    ``segment * (1 - overlap)`` samples; the last one is zero-padded. ``progress``: ``True``
    for a progress bar, or a function called with (segments done, segments) after each batch.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    channels, n = x.shape
    segment = max(1, segment)  # a short input is zero-padded to one segment, never shorter
    stride = max(1, int(segment * (1 - overlap)))
    starts = list(range(0, max(n - segment, 0) + 1, stride))
    if starts[-1] + segment < n:
        starts.append(starts[-1] + stride)
    padded = torch.nn.functional.pad(x, (0, starts[-1] + segment - n))
    weights = _fade_weights(segment, segment - stride, x.device)
    out = torch.zeros(channels, padded.shape[-1], device=x.device)
    total = torch.zeros(padded.shape[-1], device=x.device)
    for b in tqdm(range(0, len(starts), batch_size), disable=progress is not True, desc="separating", leave=False):
        group = starts[b:b + batch_size]
        chunk = torch.stack([padded[:, s:s + segment] for s in group])
        result = fn(chunk).float()
        for s, y in zip(group, result):
            out[:, s:s + segment] += y * weights
            total[s:s + segment] += weights
        if callable(progress):
            progress(b + len(group), len(starts))
    return out[:, :n] / total[:n]


def _check(model: nn.Module, where, segment: float, options: dict) -> dict:
    """The family's own options of ``options``, after refusing (in one line) a model that does
    not separate, an option its family does not take, or a segment length out of range."""
    from .errors import SynthGenError
    from .models import model_options, require_task

    require_task(model, ("separator", "matcher"), "separate a synth stem", where)
    if not (math.isfinite(segment) and MIN_SEGMENT <= segment <= MAX_SEGMENT):
        raise SynthGenError(f"segment must be between {MIN_SEGMENT:g} and {MAX_SEGMENT:g} seconds, got {segment} "
                            "(it is in seconds, not samples)")
    return model_options(model, options)


@torch.no_grad()
def separate(mix: torch.Tensor, model: nn.Module | str | Path, sample_rate: int | None = None, *,
             segment: float = 10.0, overlap: float = 0.25, batch_size: int = 4,
             device: str | torch.device | None = None, progress: Progress = False,
             role_check: bool = True, **model_kwargs) -> Separation:
    """Separate the synth stem from ``mix``.

    Args:
        mix: ``(channels, samples)`` or ``(samples,)``, any length.
        model: a separation model, a checkpoint path, or a bundled model name.
        sample_rate: rate of ``mix``; ``None`` means the model's rate.
        segment: seconds per segment given to the model.
        overlap: fraction of each segment shared with the next (cross-faded).
        batch_size: segments per forward pass.
        device: where to run; default CUDA when available.
        progress: ``True`` shows a progress bar; a function is called with (segments done,
            segments) instead (for each group of channels in turn).
        role_check: with a ``query`` that names a synth role, fade the answer where it does not
            sound like that role (:mod:`.roles`), so a part the mix lacks answers near
            silence; ``False`` keeps the separator's answer as it is.
        **model_kwargs: inference options of the model's family (its ``options``, e.g.
            ``wiener=True`` for SynthLSTM); one left off (``False``/``None``) that the family
            does not have is ignored, one that is set is refused.
    Raises:
        CheckpointError: a model that does not separate (SynthGen generates), or an option
            its family does not take.
    Returns:
        :class:`Separation` with ``synth`` and ``residual`` shaped like ``mix``, at its rate.
    """
    from .errors import SynthGenError
    from .models import load_model

    where = None if isinstance(model, nn.Module) else model
    model = model if isinstance(model, nn.Module) else load_model(model)
    model_kwargs = _check(model, where, segment, model_kwargs)
    dev = default_device(device)
    model = model.to(dev).eval()
    squeeze = mix.dim() == 1
    x = mix[None] if squeeze else mix
    rate = model.config.sample_rate
    sample_rate = sample_rate or rate
    # beyond full scale (float files can hold 1e18) the model sees the mix at full scale, and the
    # synth is scaled back: spectra of such levels overflow float32
    peak = float(x.abs().max()) if x.numel() else 0.0
    scale = peak if peak > 1.0 else 1.0
    work = resample(x.float() / scale, sample_rate, rate)
    batch_size = max(1, min(batch_size, int(BATCH_SECONDS // segment)))  # long segments: fewer at a time
    parts = []
    for group in range(0, work.shape[0], CHANNEL_GROUP):  # memory grows with channels x segment x batch
        parts.append(overlap_add(lambda chunk: model(chunk, **model_kwargs), work[group:group + CHANNEL_GROUP].to(dev),
                                 int(round(segment * rate)), overlap, batch_size, progress).cpu())
    synth = resample(torch.cat(parts), rate, sample_rate) * scale
    if not bool(torch.isfinite(synth).all()):
        raise SynthGenError(f"{where or 'the model'}: the separated synth holds NaN or infinite samples — the "
                            "model is broken (NaN weights?) or this mix is out of its range; nothing was written")
    n = x.shape[-1]
    synth = torch.nn.functional.pad(synth, (0, max(0, n - synth.shape[-1])))[..., :n].to(mix.device)
    if role_check and model_kwargs.get("query"):
        from .roles import check_answer

        synth = check_answer(synth, sample_rate, model_kwargs["query"])
    if squeeze:
        synth = synth[0]
    return Separation(synth=synth, residual=mix.float() - synth, sample_rate=sample_rate)


_SEPARATE_SETTINGS = ("segment", "overlap", "batch_size", "device", "progress", "role_check")  # separate()'s own


def audio_jobs(inputs: list[str | Path], output: str | Path) -> tuple[dict[Path, Path], list[tuple[Path, Path]]]:
    """``{output folder: input file}`` for audio files and folders (walked, layout mirrored), and
    the ``(input, folder)`` of inputs given more than once (each is processed once).

    Raises:
        AudioError: a missing input, no audio found, or two inputs that would share a folder.
    """
    from .audio import is_audio_file
    from .errors import AudioError

    jobs: dict[Path, Path] = {}
    repeated: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():  # mirror the folder's layout so same-named files do not collide
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_audio_file(p)
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            pairs = [(p, p.relative_to(item).with_suffix("")) for p in found]
        elif item.exists() or is_audio_file(item):
            pairs = [(item, Path(item.stem))]
        else:
            raise AudioError(item, "no such file or folder", "check the path (is Google Drive mounted?)")
        for path, rel in pairs:
            folder = Path(output) / rel
            if folder in jobs and jobs[folder].resolve() == path.resolve():
                repeated.append((path, folder))
                continue
            if folder in jobs:
                raise AudioError(path, f"would overwrite the stems of {jobs[folder]} (both go to {folder})",
                                 "rename one of them, or give them in separate runs with different --output")
            jobs[folder] = path
    if not jobs:
        raise AudioError(None, f"no audio files found in {', '.join(map(str, inputs))}")
    return jobs, repeated


@dataclass
class FileOutcome:
    """What :func:`separate_files` did with one input: ``status`` is ``"separated"``,
    ``"skipped"`` (already separated with the same model and settings) or ``"failed"``;
    ``note`` says why it failed, or what was changed (a level lowered, samples clipped)."""

    input: Path
    folder: Path
    status: str
    note: str = ""


RECORD = "separation.json"
"""Written beside the stems once both are complete: what was separated, with which model and
settings. A rerun skips a file whose record matches."""


def _record(path: Path, model, settings: dict) -> dict | None:
    """What identifies one separation, or ``None`` when the model is an object in memory."""
    if isinstance(model, nn.Module):
        return None
    from .models import resolve

    weights = resolve(model)
    stat, wstat = path.stat(), weights.stat()
    return {"input": str(path.resolve()), "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "model": str(weights.resolve()), "model_size": wstat.st_size, "model_mtime_ns": wstat.st_mtime_ns,
            "settings": {k: settings[k] for k in sorted(settings) if k not in ("progress", "device")}}


def _finished(folder: Path, record: dict | None) -> bool:
    if record is None or not all((folder / n).is_file() for n in (RECORD, "synth.wav", "residual.wav")):
        return False
    try:
        return json.loads((folder / RECORD).read_text()) == record
    except (OSError, ValueError):
        return False


def _peak(path: Path, frames: int, rate: int, block: float) -> float:
    """The largest absolute sample of a float file of ``frames`` samples, read block by block."""
    from .audio import load_audio

    step, peak = max(1, int(block * rate)), 0.0
    for start in range(0, max(frames, 1), step):
        block_audio = load_audio(path, None, None, start / rate, step / rate)
        peak = max(peak, float(block_audio.abs().max()) if block_audio.numel() else 0.0)
    return peak


def _separate_one(path: Path, folder: Path, net: nn.Module, bits: int, block: float, context: float,
                  kwargs: dict) -> str:
    """Write ``folder/synth.wav`` and ``folder/residual.wav`` for one file; returns a note (or "")."""
    from .audio import AudioWriter, audio_info, load_audio

    info = audio_info(path)
    rate, channels = info.sample_rate, info.channels
    # many channels: shorter blocks, so that one block's samples stay bounded (2 channels x block)
    block = max(10.0, block * 2 / max(2, channels))
    step, pad = int(block * rate), int(context * rate)
    gain, notes = 1.0, []
    if bits != 32 and info.subtype in ("FLOAT", "DOUBLE"):  # float files may go beyond full scale
        peak = _peak(path, info.frames, rate, block)
        if peak > 1.0:
            gain = 1.0 / peak
            notes.append(f"the mix peaks at {20 * math.log10(peak):+.1f} dBFS: both stems were lowered by "
                         f"{20 * math.log10(peak):.1f} dB to fit {bits}-bit files (--bits 32 keeps the level)")
    with AudioWriter(folder / "synth.wav", rate, channels, bits) as synth_out, \
            AudioWriter(folder / "residual.wav", rate, channels, bits) as residual_out:
        for start in range(0, max(info.frames, 1), step):
            lo, hi = max(0, start - pad), min(info.frames, start + step + pad)
            result = separate(load_audio(path, None, None, lo / rate, (hi - lo) / rate) * gain, net, rate, **kwargs)
            keep = slice(start - lo, min(start + step, info.frames) - lo)
            synth_out.write(result.synth[:, keep])
            residual_out.write(result.residual[:, keep])
    clipped = synth_out.clipped + residual_out.clipped
    if clipped:
        notes.append(f"{clipped} samples were clipped at full scale (--bits 32 keeps them)")
    return "; ".join(notes)


def separate_files(inputs: list[str | Path], model: nn.Module | str | Path, output: str | Path, *,
                   bits: int = 24, block: float = 120.0, context: float = 5.0, **kwargs):
    """Separate audio files (folders are walked); yields a :class:`FileOutcome` per file.

    For each input ``X.ext`` writes ``output/X/synth.wav`` and ``output/X/residual.wav`` at the
    input's rate and channel count, then ``output/X/separation.json``. Files are processed
    ``block`` seconds at a time, each block read with ``context`` extra seconds on both sides
    that are separated and then dropped, so a multi-hour file needs the memory of one block.

    A batch goes on past a file that cannot be separated (its outcome is ``"failed"``, with the
    reason) and skips files already separated with the same model and settings, so a rerun
    after an interruption resumes. Problems with the model or settings are raised before any
    file is started; a file given twice is processed once.
    """
    from .errors import SynthGenError
    from .models import load_model

    jobs, repeated = audio_jobs(inputs, output)
    net = model if isinstance(model, nn.Module) else load_model(model)
    # refuse a model, option or segment that cannot separate before any file is started
    _check(net, None if net is model else model, kwargs.get("segment", 10.0),
           {k: v for k, v in kwargs.items() if k not in _SEPARATE_SETTINGS})
    for path, folder in repeated:
        yield FileOutcome(path, folder, "skipped", "given more than once; separated once")
    for folder, path in jobs.items():
        try:
            record = _record(path, model, {"bits": bits, **kwargs})
        except OSError:
            record = None
        if _finished(folder, record):
            yield FileOutcome(path, folder, "skipped", "already separated with this model and these settings")
            continue
        try:
            note = _separate_one(path, folder, net, bits, block, context, kwargs)
        except SynthGenError as exc:
            yield FileOutcome(path, folder, "failed", str(exc))
            continue
        if record is not None:
            write_text_atomic(folder / RECORD, json.dumps(record, indent=1))
        yield FileOutcome(path, folder, "separated", note)
