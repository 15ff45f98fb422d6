"""``separate``: the synth stem of a whole song, any length, rate and channel count.

The song is cut into overlapping segments, separated in batches, and put back together with
linear cross-fades normalised by the summed fade weights, so the seams are smooth and a model
that returns its input reproduces the song exactly. Audio at another rate is resampled to the
model's rate and back, and the result has exactly the input's length and channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .audio import resample

# Shorter segments than this leave a spectrogram model too few frames to read; longer ones
# only cost memory (long files are streamed in blocks anyway).
MIN_SEGMENT, MAX_SEGMENT = 0.5, 300.0


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


def overlap_add(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, segment: int,
                overlap: float = 0.25, batch_size: int = 4, progress: bool = False) -> torch.Tensor:
    """Apply ``fn`` to overlapping segments of ``x`` ``(channels, samples)`` and cross-fade.

    ``fn`` maps ``(batch, channels, segment)`` to the same shape. Segments start every
    ``segment * (1 - overlap)`` samples; the last one is zero-padded.
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
    for b in tqdm(range(0, len(starts), batch_size), disable=not progress, desc="separating", leave=False):
        group = starts[b:b + batch_size]
        chunk = torch.stack([padded[:, s:s + segment] for s in group])
        result = fn(chunk).float()
        for s, y in zip(group, result):
            out[:, s:s + segment] += y * weights
            total[s:s + segment] += weights
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
             device: str | torch.device | None = None, progress: bool = False,
             **model_kwargs) -> Separation:
    """Separate the synth stem from ``mix``.

    Args:
        mix: ``(channels, samples)`` or ``(samples,)``, any length.
        model: a separation model, a checkpoint path, or a bundled model name.
        sample_rate: rate of ``mix``; ``None`` means the model's rate.
        segment: seconds per segment given to the model.
        overlap: fraction of each segment shared with the next (cross-faded).
        batch_size: segments per forward pass.
        device: where to run; default CUDA when available.
        progress: show a progress bar.
        **model_kwargs: inference options of the model's family (its ``options``, e.g.
            ``wiener=True`` for SynthLSTM); one left off (``False``/``None``) that the family
            does not have is ignored, one that is set is refused.
    Raises:
        CheckpointError: a model that does not separate (SynthGen generates), or an option
            its family does not take.
    Returns:
        :class:`Separation` with ``synth`` and ``residual`` shaped like ``mix``, at its rate.
    """
    from .models import load_model

    where = None if isinstance(model, nn.Module) else model
    model = model if isinstance(model, nn.Module) else load_model(model)
    model_kwargs = _check(model, where, segment, model_kwargs)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    squeeze = mix.dim() == 1
    x = mix[None] if squeeze else mix
    rate = model.config.sample_rate
    sample_rate = sample_rate or rate
    work = resample(x.float(), sample_rate, rate).to(dev)
    synth = overlap_add(lambda chunk: model(chunk, **model_kwargs), work, int(round(segment * rate)),
                        overlap, batch_size, progress)
    synth = resample(synth.cpu(), rate, sample_rate)
    n = x.shape[-1]
    synth = torch.nn.functional.pad(synth, (0, max(0, n - synth.shape[-1])))[..., :n].to(mix.device)
    if squeeze:
        synth = synth[0]
    return Separation(synth=synth, residual=mix.float() - synth, sample_rate=sample_rate)


_SEPARATE_SETTINGS = ("segment", "overlap", "batch_size", "device", "progress")  # separate()'s own


def audio_jobs(inputs: list[str | Path], output: str | Path) -> dict[Path, Path]:
    """``{output folder: input file}`` for audio files and folders (walked, layout mirrored).

    Raises:
        AudioError: a missing input, no audio found, or two inputs that would share a folder.
    """
    from .audio import is_audio_file
    from .errors import AudioError

    jobs: dict[Path, Path] = {}
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
            if (Path(output) / rel) in jobs:
                raise AudioError(path, f"would overwrite the stems of {jobs[Path(output) / rel]} "
                                 f"(both go to {Path(output) / rel})", "rename one of them")
            jobs[Path(output) / rel] = path
    if not jobs:
        raise AudioError(None, f"no audio files found in {', '.join(map(str, inputs))}")
    return jobs


def separate_files(inputs: list[str | Path], model: nn.Module | str | Path, output: str | Path, *,
                   bits: int = 24, block: float = 120.0, context: float = 5.0, **kwargs):
    """Separate audio files (folders are walked); yields ``(input, output folder)`` per file.

    For each input ``X.ext`` writes ``output/X/synth.wav`` and ``output/X/residual.wav`` at the
    input's rate and channel count. Files are processed ``block`` seconds at a time, each block
    read with ``context`` extra seconds on both sides that are separated and then dropped, so a
    multi-hour file needs the memory of one block, not of the whole file.
    """
    from .audio import AudioWriter, audio_info, load_audio
    from .models import load_model

    jobs = audio_jobs(inputs, output)
    net = model if isinstance(model, nn.Module) else load_model(model)
    # refuse a model, option or segment that cannot separate before any file is started
    _check(net, None if net is model else model, kwargs.get("segment", 10.0),
           {k: v for k, v in kwargs.items() if k not in _SEPARATE_SETTINGS})
    for folder, path in jobs.items():
        info = audio_info(path)
        rate, total = info.sample_rate, info.frames
        step, pad = int(block * rate), int(context * rate)
        with AudioWriter(folder / "synth.wav", rate, info.channels, bits) as synth_out, \
                AudioWriter(folder / "residual.wav", rate, info.channels, bits) as residual_out:
            for start in range(0, max(total, 1), step):
                lo, hi = max(0, start - pad), min(total, start + step + pad)
                mix = load_audio(path, None, None, lo / rate, (hi - lo) / rate)
                result = separate(mix, net, rate, **kwargs)
                keep = slice(start - lo, min(start + step, total) - lo)
                synth_out.write(result.synth[:, keep])
                residual_out.write(result.residual[:, keep])
        yield path, folder
