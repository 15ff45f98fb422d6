"""``generate`` and ``remix``: SynthGen writes a synth stem that fits a mix of any length.

A mix longer than the model's window is generated window by window: each window starts with
the last ``overlap`` seconds of tokens already generated as its prompt (so the line continues
instead of restarting), is conditioned on its own stretch of the mix, and its audio is
cross-faded into the previous window's over that overlap. The result has the mix's exact
length, sample rate and channel count.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .audio import convert_channels, resample, save_stems
from .device import default_device
from .errors import SynthGenError
from .models import DEFAULT_MUSICGEN


@dataclass
class Generation:
    """A generated synth stem beside the mix it was made for, both ``(channels, samples)``."""

    mix: torch.Tensor
    synth: torch.Tensor
    sample_rate: int
    description: str

    def save(self, folder: str | Path, bits: int = 32) -> Path:
        """Write ``synth.wav`` and ``mix.wav`` into ``folder``; returns the folder."""
        return save_stems(folder, {"synth": self.synth, "mix": self.mix}, self.sample_rate, bits)


@dataclass
class Remix:
    """``remixed = mix - removed + synth``: the mix with its synth replaced by a new one."""

    mix: torch.Tensor
    removed: torch.Tensor
    synth: torch.Tensor
    remixed: torch.Tensor
    sample_rate: int
    description: str

    def save(self, folder: str | Path, bits: int = 32) -> Path:
        """Write ``mix``, ``removed``, ``synth`` and ``remixed`` WAVs into ``folder``."""
        return save_stems(folder, {n: getattr(self, n) for n in ("mix", "removed", "synth", "remixed")},
                          self.sample_rate, bits)


def open_model(model: str | Path, device: str | torch.device = "cpu", family: str | None = None) -> nn.Module:
    """Any model a user can name, in eval mode on ``device``: a bundled name or a checkpoint of
    any family (``family`` given: refuse the others), and for SynthGen also ``tiny``, an export
    folder or a pretrained MusicGen name (used as released: text, and for melody the
    Demucs-filtered chroma of the mix; no mix tokens, which only a fine-tuned model has learnt)."""
    from .models import PRETRAINED_MUSICGEN, load_model
    from .models.synthgen import SynthGen, SynthGenConfig

    name = str(model)
    if name in PRETRAINED_MUSICGEN:
        melody = PRETRAINED_MUSICGEN[name]["chroma"]
        return SynthGen(SynthGenConfig(base=name, mix_tokens=False, use_chroma=melody, demucs_chroma=melody),
                        device=str(device)).to(device).eval()
    if _names_a_base(name):
        return SynthGen(SynthGenConfig(base=name), device=str(device)).to(device).eval()
    return load_model(name, family=family, device=device)


def _names_a_base(name: str) -> bool:
    """True when ``name`` is a SynthGen base rather than a checkpoint: a pretrained MusicGen name,
    ``tiny`` or an export folder."""
    from .models import PRETRAINED_MUSICGEN

    return name in PRETRAINED_MUSICGEN or name == "tiny" or Path(name).is_dir()


def model_class(model: str | Path) -> type[nn.Module]:
    """The family class :func:`open_model` would build for ``model``, without building it (its
    ``task`` and ``options`` say what it does and takes): a checkpoint's header is read, a
    pretrained MusicGen name, ``tiny`` or an export folder is SynthGen."""
    from .models import family_class, load_checkpoint

    name = str(model)
    return family_class("synthgen" if _names_a_base(name) else load_checkpoint(name)["family"])


def load_synthgen(model, device: str | torch.device = "cpu") -> nn.Module:
    """A SynthGen model from an instance or anything :func:`open_model` opens; other families
    are refused in one line."""
    if isinstance(model, nn.Module):
        from .models import require_task

        return require_task(model, ("generator",), "generate a synth stem").to(device).eval()
    return open_model(model, device, family="synthgen")


@torch.no_grad()
def generate(mix: torch.Tensor, description: str | None = None, model=DEFAULT_MUSICGEN,
             sample_rate: int | None = None, *, window: float | None = None, overlap: float = 2.0,
             use_sampling: bool = True, temperature: float = 1.0, top_k: int = 250, top_p: float = 0.0,
             cfg_coef: float = 3.0, seed: int | None = 0, primer: torch.Tensor | None = None,
             device: str | torch.device | None = None,
             progress: bool | Callable[[int, int], None] = False) -> Generation:
    """Generate a synth stem for ``mix``.

    Args:
        mix: ``(channels, samples)`` or ``(samples,)``, any length.
        description: what the synth should sound like (default: the model's default description).
        model: a SynthGen model, checkpoint, export folder, ``tiny`` or a pretrained MusicGen name.
        sample_rate: rate of ``mix``; ``None`` means the model's rate.
        window: seconds generated per window (default: the model's training window).
        overlap: seconds each window continues from the previous one (its prompt) and cross-fades.
        use_sampling: sample tokens; ``False`` takes the most likely token (greedy).
        temperature: softmax temperature (higher: more varied).
        top_k: sample among the ``top_k`` most likely tokens (0: all).
        top_p: sample from the smallest set of tokens whose probability reaches ``top_p`` (0: off;
            overrides ``top_k`` when set).
        cfg_coef: classifier-free guidance strength (1: none; MusicGen uses 3).
        seed: seeds the sampling (same seed, same stem); ``None`` leaves the RNG as it is.
        primer: a synth line to continue, ``(channels, samples)`` or ``(samples,)`` at
            ``sample_rate``: the stem starts with it unchanged and the model carries on from its
            tokens (the first window's prompt). Longer than the mix: cut to the mix.
        device: default CUDA when available.
        progress: ``True`` shows a progress bar over windows; a function is called with
            (windows done, windows) instead.
    Returns:
        :class:`Generation` with ``synth`` shaped like ``mix``, at its rate.
    """
    dev = default_device(device)
    net = load_synthgen(model, dev)
    squeeze = mix.dim() == 1
    x = (mix[None] if squeeze else mix).float()
    if x.shape[-1] == 0:
        raise SynthGenError("the mix is empty: nothing to generate for")
    sample_rate = sample_rate or net.sample_rate
    rate, hop = net.sample_rate, int(round(net.sample_rate / net.frame_rate))
    mono = resample(x.mean(0, keepdim=True), sample_rate, rate)
    total = math.ceil(mono.shape[-1] / hop)
    size = max(2, int(round((window or net.config.window) * net.frame_rate)))
    keep = min(max(0, int(round(overlap * net.frame_rate))), size - 1)
    starts = [0]
    while starts[-1] + size < total:
        starts.append(starts[-1] + size - keep)
    mono = nn.functional.pad(mono, (0, total * hop - mono.shape[-1]))
    codes = torch.zeros(1, net.n_q, total, dtype=torch.long, device=dev)
    primed = 0  # frames fixed by the primer
    if primer is not None:
        primer = (primer[None] if primer.dim() == 1 else primer).float()
        p_mono = resample(primer.mean(0, keepdim=True), sample_rate, rate)[..., : total * hop]
        primed = min(math.ceil(p_mono.shape[-1] / hop), size - 1)
        padded = nn.functional.pad(p_mono, (0, primed * hop - p_mono.shape[-1]))[..., : primed * hop]
        codes[..., :primed] = net.encode_audio(padded[None].to(dev))[..., :primed]
    out = torch.zeros(total * hop)
    description = description or net.config.default_description
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        for i, start in enumerate(tqdm(starts, desc="generating", disable=progress is not True, leave=False)):
            if callable(progress):
                progress(i, len(starts))
            frames = min(size, total - start)
            piece = mono[:, start * hop:(start + frames) * hop][None].to(dev)
            mix_codes = net.encode_audio(piece)[..., :frames]
            prompt = codes[..., start:start + keep] if i > 0 and keep else (codes[..., :primed] if primed else None)
            if prompt is not None and prompt.shape[-1] >= frames:
                continue  # nothing new in this window (the mix ends inside the overlap)
            new = net.generate_codes(mix_codes, net.mix_chroma(piece), description, prompt,
                                     use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                     cfg_coef=cfg_coef)
            codes[..., start:start + frames] = new
            audio = net.decode(new)[0, 0, : frames * hop].float().cpu()
            fade = (prompt.shape[-1] if prompt is not None else 0) * hop
            ramp = torch.linspace(0.0, 1.0, fade + 2)[1:-1]
            a = start * hop
            out[a:a + fade] = out[a:a + fade] * (1 - ramp) + audio[:fade] * ramp
            out[a + fade:a + audio.shape[-1]] = audio[fade:]
    if callable(progress):
        progress(len(starts), len(starts))
    synth = resample(out[None], rate, sample_rate)
    n = x.shape[-1]
    synth = nn.functional.pad(synth, (0, max(0, n - synth.shape[-1])))[..., :n]
    synth = convert_channels(synth, x.shape[0])
    if primer is not None:  # the primer itself, not its decoded tokens
        p = convert_channels(primer, x.shape[0])[..., :n]
        synth[..., : p.shape[-1]] = p
    if squeeze:
        synth = synth[0]
    return Generation(mix=mix.float(), synth=synth, sample_rate=sample_rate, description=description)


def remix(mix: torch.Tensor, description: str | None = None, model=DEFAULT_MUSICGEN,
          sample_rate: int | None = None, *, separator="synthlstm-demo", **generate_kwargs) -> Remix:
    """Replace the synth in ``mix``: remove it with a separation model, add a generated one.

    The generator is conditioned on the original mix (what it was trained on), so the new
    synth plays against the same song; ``separator`` decides what is taken out.

    Args:
        mix, description, model, sample_rate: as for :func:`generate`.
        separator: the separation model (name or checkpoint) that removes the old synth.
        **generate_kwargs: sampling settings for :func:`generate`.
    """
    from .models import load_model, require_task
    from .separate import separate

    remover = separator if isinstance(separator, nn.Module) else load_model(separator)
    require_task(remover, ("separator",), "remove the old synth for a remix", None if remover is separator else separator)
    net = load_synthgen(model, default_device(generate_kwargs.get("device")))
    rate = sample_rate or net.sample_rate
    removed = separate(mix, remover, rate)
    new = generate(mix, description, net, rate, **generate_kwargs)
    return Remix(mix=mix.float(), removed=removed.synth, synth=new.synth, remixed=removed.residual + new.synth,
                 sample_rate=rate, description=new.description)


def generate_files(inputs: list[str | Path], model, output: str | Path, description: str | None = None, *,
                   remix_synth: bool = False, separator="synthlstm-demo", bits: int = 24,
                   primer: str | Path | None = None, **generate_kwargs):
    """Generate a synth for audio files (folders are walked); yields ``(input, output folder)``.

    Writes ``output/X/synth.wav`` for each input ``X.ext`` at its rate and channel count; with
    ``remix_synth`` also ``removed.wav`` (the old synth) and ``remixed.wav``. ``primer``: an
    audio file with a synth line every stem starts with and continues.
    """
    from .audio import load_audio
    from .separate import audio_jobs

    jobs, _ = audio_jobs(inputs, output)  # a file given twice is generated once
    if remix_synth and not isinstance(separator, nn.Module):  # loaded (and checked) once, not per file
        from .models import load_model, require_task

        separator = require_task(load_model(separator), ("separator",), "remove the old synth for a remix", separator)
    dev = default_device(generate_kwargs.pop("device", None))
    net = load_synthgen(model, dev)
    for folder, path in jobs.items():
        mix = load_audio(path, None)
        info_rate = _rate(path)
        if primer is not None:
            generate_kwargs["primer"] = load_audio(primer, info_rate)
        if remix_synth:
            result = remix(mix, description, net, info_rate, separator=separator, device=dev, **generate_kwargs)
            stems = {"synth": result.synth, "removed": result.removed, "remixed": result.remixed}
        else:
            result = generate(mix, description, net, info_rate, device=dev, **generate_kwargs)
            stems = {"synth": result.synth}
        save_stems(folder, stems, info_rate, bits)
        yield path, folder


def _rate(path: Path) -> int:
    from .audio import audio_info

    return audio_info(path).sample_rate
