"""SynthGen's files: building the offline ``tiny`` base, loading a pretrained MusicGen or an
export folder (never through unrestricted unpickling), and exporting in audiocraft's format.

The model itself is in :mod:`synthgen_lib.models.synthgen`; its evaluation
(:func:`synthgen_lib.evaluate.conditioning_report`) in the evaluation module.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from . import audiocraft_compat  # noqa: F401  (first: audiocraft imports xformers.ops)
from audiocraft.models import CompressionModel, builders
from omegaconf import OmegaConf
from torch import nn

from ..errors import SynthGenError
from . import PRETRAINED_MUSICGEN
from .synthgen import CHROMA, MIX, TEXT

if TYPE_CHECKING:
    from .synthgen import SynthGen, SynthGenConfig


# The tiny offline model, described by audiocraft configs so that export/reload use the same
# builders and loaders as the real models.

def _tiny_lm_cfg(c: SynthGenConfig) -> dict:
    return {
        "lm_model": "transformer_lm", "device": "cpu", "dtype": "float32",
        "dataset": {"segment_duration": c.window},
        "transformer_lm": {"n_q": c.n_q, "card": c.card, "dim": c.dim, "num_heads": c.num_heads,
                           "num_layers": c.num_layers, "hidden_scale": 4, "norm": "layer_norm",
                           "norm_first": True, "causal": True, "custom": True, "dropout": 0.0,
                           "positional_embedding": "sin", "bias_proj": False},
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": list(range(c.n_q)), "flatten_first": 0, "empty_initial": 0}},
        "attribute_dropout": {}, "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": 3.0},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1.0, "sum": [],
                  "prepend": [], "cross": [TEXT], "input_interpolate": []},
        "conditioners": {TEXT: {"model": "lut", "lut": {"n_bins": 512, "dim": c.dim, "tokenizer": "noop"}}},
    }


def _tiny_codec_cfg(c: SynthGenConfig) -> dict:
    ratios = {16000: [10, 8, 8], 32000: [10, 8, 16]}
    if c.sample_rate not in ratios:
        raise ValueError(f"the tiny EnCodec runs at 16000 or 32000 Hz, not {c.sample_rate}")
    return {
        "compression_model": "encodec", "device": "cpu", "dtype": "float32",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": c.sample_rate, "channels": 1,
                    "causal": False, "renormalize": False},
        "seanet": {"dimension": 32, "channels": 1, "n_filters": 8, "n_residual_layers": 1,
                   "ratios": ratios[c.sample_rate], "encoder": {}, "decoder": {}},
        "rvq": {"n_q": c.n_q, "bins": c.card, "q_dropout": False, "kmeans_init": True, "kmeans_iters": 10},
    }


def _calibration_audio(rate: int, seed: int, clips: int = 4, seconds: float = 4.0) -> torch.Tensor:
    """``(clips, 1, samples)`` of music-like audio made here (the model package reads no
    dataset): each clip a sequence of harmonic notes with decaying envelopes, over noise bursts
    like drum hits, at seeded pitches, lengths and levels."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * rate)
    t = torch.arange(n) / rate
    out = torch.zeros(clips, 1, n)
    for k in range(clips):
        start = 0
        while start < n:
            length = int(rate * (0.1 + 0.4 * torch.rand(1, generator=g).item()))
            f0 = 55.0 * 2 ** (torch.randint(0, 48, (1,), generator=g).item() / 12)
            tt = t[: min(length, n - start)]
            tone = sum(torch.sin(2 * math.pi * f0 * h * tt) / h for h in range(1, 9) if f0 * h < rate / 2)
            out[k, 0, start:start + tt.numel()] += 0.3 * tone * torch.exp(-tt * (2 + 8 * torch.rand(1, generator=g)))
            if torch.rand(1, generator=g).item() < 0.5:  # a drum-like burst of noise
                out[k, 0, start:start + tt.numel()] += 0.2 * torch.randn(tt.numel(), generator=g) * torch.exp(-tt * 30)
            start += length
    return out


def _init_tiny_codebooks(codec: nn.Module, c: SynthGenConfig) -> None:
    """k-means initialisation of the random codec's codebooks on seeded music-like audio, so
    its tokens spread over the codebook and carry information about the audio."""
    wav = _calibration_audio(c.sample_rate, c.seed + 7919)
    codec.train()
    with torch.no_grad():
        codec.quantizer(codec.encoder(wav), codec.frame_rate)
    codec.eval()


def build_tiny(c: SynthGenConfig) -> tuple[nn.Module, nn.Module, dict, dict]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(c.seed)
        lm_cfg, codec_cfg = _tiny_lm_cfg(c), _tiny_codec_cfg(c)
        lm = builders.get_lm_model(OmegaConf.create(lm_cfg))
        codec = builders.get_compression_model(OmegaConf.create(codec_cfg))
        _init_tiny_codebooks(codec, c)
    return lm, codec, lm_cfg, codec_cfg


def _safe_package(path: Path, codec: bool = False) -> dict:
    """An audiocraft export file read with ``weights_only=True`` (never unrestricted)."""
    from . import CheckpointError

    if not path.is_file():
        raise CheckpointError(f"{path}: missing — a SynthGen export folder holds state_dict.bin, "
                              "compression_state_dict.bin and synthgen.pt")
    try:
        pkg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: refused — not a plain-tensor checkpoint ({str(exc).splitlines()[0][:120]}); "
                              "only load models from people you trust") from None
    if codec and isinstance(pkg, dict) and isinstance(pkg.get("pretrained"), str):
        return pkg
    if not isinstance(pkg, dict) or "xp.cfg" not in pkg or "best_state" not in pkg:
        raise CheckpointError(f"{path}: not an audiocraft export (no 'xp.cfg' / 'best_state')")
    return pkg


def read_extra(path: Path) -> dict:
    from . import CheckpointError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: refused — not a plain-tensor file ({str(exc).splitlines()[0][:120]})") from None


_NETWORK_ERRORS = {"ConnectionError", "MaxRetryError", "NewConnectionError", "Timeout", "LocalEntryNotFoundError",
                   "OfflineModeIsEnabled", "HfHubHTTPError", "ProxyError", "SSLError"}


def _unreachable(exc: BaseException) -> bool:
    """True for the errors the hub's client raises when it cannot download (no network, hub
    down, offline mode), whatever library wraps them."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & _NETWORK_ERRORS) or "huggingface.co" in str(exc) or "Hub" in str(exc)[:200]


def _hub_files(name: str) -> Path:
    """Download a pretrained MusicGen's two files from the Hugging Face hub (as audiocraft
    does) into the hub cache; returns the folder holding them."""
    import logging

    import audiocraft
    from huggingface_hub import hf_hub_download

    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # no "Retrying in 8s" lines: one message if it fails
    try:
        for filename in ("state_dict.bin", "compression_state_dict.bin"):
            path = hf_hub_download(repo_id=name, filename=filename, library_name="audiocraft",
                                   library_version=audiocraft.__version__)
    except Exception as exc:
        if _unreachable(exc):
            raise _offline(name) from None
        raise
    finally:
        hub_log.setLevel(level)
    return Path(path).parent


def _offline(name: str) -> SynthGenError:
    return SynthGenError(f"{name}: cannot reach the model hub to download it (no network?) — connect to the "
                         "internet (Colab is), or work offline with an export folder or the 'tiny' base")


def load_base(base: str, device: str) -> tuple[nn.Module, nn.Module, dict | None, dict | None]:
    """LM and EnCodec of an export folder or a pretrained name (downloaded from the hub).

    Both are read here with ``torch.load(weights_only=True)`` and rebuilt with audiocraft's
    builders — the same result as ``audiocraft.models.loaders``, but never through an
    unrestricted unpickling (audiocraft's loaders call ``torch.load`` without
    ``weights_only``, which on torch < 2.6 means full pickle).
    """
    folder = Path(base)
    if not folder.is_dir():
        if base not in PRETRAINED_MUSICGEN:
            raise SynthGenError(f"unknown SynthGen base {base!r}: use 'tiny', {', '.join(PRETRAINED_MUSICGEN)} or an "
                                "export folder")
        folder = _hub_files(base)
    lm_pkg = _safe_package(folder / "state_dict.bin")
    lm_cfg = OmegaConf.create(lm_pkg["xp.cfg"])
    lm_cfg.device, lm_cfg.dtype = device, "float32"
    chroma = lm_cfg.get("conditioners", {}).get(CHROMA, {}).get("chroma_stem", {})
    if "cache_path" in chroma:
        del chroma["cache_path"]
    try:  # the text encoder (T5) and a pretrained EnCodec come from the hub too
        lm = builders.get_lm_model(lm_cfg)
        lm.load_state_dict(lm_pkg["best_state"])
        codec_pkg = _safe_package(folder / "compression_state_dict.bin", codec=True)
        if "pretrained" in codec_pkg:  # a reference to the hub's EnCodec, as MusicGen ships it
            codec = CompressionModel.get_pretrained(codec_pkg["pretrained"], device=device)
            return lm, codec.eval(), OmegaConf.to_container(lm_cfg), {"pretrained": codec_pkg["pretrained"]}
    except (OSError, ConnectionError) as exc:
        if _unreachable(exc):
            raise _offline(base) from None
        raise
    codec_cfg = OmegaConf.create(codec_pkg["xp.cfg"])
    codec_cfg.device = device
    codec = builders.get_compression_model(codec_cfg)
    codec.load_state_dict(codec_pkg["best_state"])
    return lm, codec.eval(), OmegaConf.to_container(lm_cfg), OmegaConf.to_container(codec_cfg)


def export(model: "SynthGen", folder: str | Path, half: bool = False) -> Path:
    """Write ``model`` in audiocraft's export format plus our conditioners (``half``: the LM's
    float weights as float16, half the size; they load back into a float32 model).

    ``folder/state_dict.bin`` (``best_state`` + ``xp.cfg``; ``audiocraft.models.loaders
    .load_lm_model(folder)`` reads it), ``folder/compression_state_dict.bin`` (the EnCodec, or a
    reference to the pretrained one) and ``folder/synthgen.pt`` (our conditioners and config).
    Reload with ``SynthGen(SynthGenConfig(base=str(folder)))`` or :func:`load_export`.
    """
    from audiocraft import __version__

    from ..fileio import atomic_path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    lm_state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.native_lm_state().items()}
    lm_pkg = {"best_state": lm_state, "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(model.lm_cfg)),
              "version": __version__, "exported": True}
    if "pretrained" in model.codec_cfg:  # the hub's EnCodec, referenced by name as MusicGen does
        codec_pkg = {"pretrained": model.codec_cfg["pretrained"], "exported": True, "version": __version__}
    else:
        codec_pkg = {"best_state": {k: v.cpu() for k, v in model.codec.state_dict().items()},
                     "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(model.codec_cfg)), "version": __version__,
                     "exported": True}
    ours = {n: {k: v.cpu() for k, v in model.conditioners[n].state_dict().items()}
            for n in (MIX, CHROMA) if n in model.conditioners}
    extra = {"config": {**dataclasses.asdict(model.config), "base": str(out), "lora_rank": 0},
             "conditioners": ours, "fuse": {n: model.lm.fuser.cond2fuse[n] for n in ours}}
    for name, payload in (("state_dict.bin", lm_pkg), ("compression_state_dict.bin", codec_pkg), ("synthgen.pt", extra)):
        with atomic_path(out / name) as tmp:
            torch.save(payload, tmp)
    return out
