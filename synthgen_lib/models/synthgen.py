"""SynthGen: MusicGen fine-tuned to write the synth stem's EnCodec tokens for a given mix.

Design
------
The language model is audiocraft's own :class:`~audiocraft.models.lm.LMModel` (the MusicGen
transformer with its delay pattern over the codebooks). It is **teacher-forced on the synth
stem's tokens** and scored with cross-entropy on those same tokens; at generation time it
writes synth tokens one frame at a time. Three conditions tell it what to write:

``description`` (text)
    MusicGen's own text conditioner: T5 (``t5-base``) for the pretrained models, a lookup
    table (``LUTConditioner(tokenizer='noop')``, no hub) for the tiny offline model. Fused by
    cross-attention, as MusicGen was trained.
``self_wav`` (the mix as melody chroma)
    12-bin chroma frames of the mix, prepended to the sequence — for ``facebook/musicgen-melody``
    this is the pretrained chroma pathway, so its weights are used as they were trained. The
    chroma is computed once at encode time and cached in the shards. Trade-off: MusicGen runs
    Demucs first to drop drums and bass from the chroma; we take the chroma of the whole mix
    (the fine-tuning adapts to it, and encode needs no Demucs model), and the tokens below
    carry everything the chroma loses.
``mix`` (the mix's own EnCodec tokens) — :class:`MixTokensConditioner`, ours
    Every frame of the mix as the sum of one embedding per codebook (started as a copy of the
    LM's own token embeddings, so a mix token first means what the same synth token means),
    laid out with the LM's delay pattern, plus a sinusoidal time position. It is **added to
    the time-aligned step** of the synth sequence (:class:`MixFuser`; works while streaming,
    unlike audiocraft's ``sum``) and, where the LM has cross-attention layers (tiny,
    musicgen-small), also **cross-attended** (``mix_fuse='auto'``): every generated frame sees
    the mix frame it plays against directly and can attend to the rest of the window.
    musicgen-melody has no cross-attention (its conditions are prepended), so there the mix
    tokens are summed only. Measured on the tiny model: with cross-attention
    alone the LM needs thousands of steps to learn where the aligned frame is; with the aligned
    sum it uses the mix within a hundred. ``prepend`` is offered for LMs without
    cross-attention (it doubles the self-attention sequence).

Classifier-free guidance: during training each example independently loses its description
(``text_dropout``), its mix conditions (``mix_dropout``: tokens and chroma together) or all of
them (``cfg_dropout``), so the unconditional branch that ``cfg_coef`` contrasts against at
generation is one the model has learnt.

Fine-tuning: ``lora_rank > 0`` freezes every LM weight and adds low-rank adapters
(``W + B·A·alpha/rank``, ``B`` starting at zero) to the attention and feed-forward projections
of every transformer layer; the conditioners we add (and the chroma projection) train in full.
``lora_rank = 0`` fine-tunes the whole LM (musicgen-small fits a 16 GB T4 that way; melody
needs LoRA — see ``bench/synthgen_memory.py``). ``gradient_checkpointing`` recomputes each layer
in the backward pass. The EnCodec model and T5 stay frozen.

Bases: ``tiny`` builds a small random LM and EnCodec from audiocraft's builders (offline, for
tests and CPU smoke runs; its codebooks are initialised by k-means on the synthetic generator,
seeded); ``facebook/musicgen-melody`` / ``facebook/musicgen-small`` load the pretrained models
the way audiocraft does (needs internet, a GPU advised); a folder written by :func:`export`
reloads a fine-tuned model.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from audiocraft.models import CompressionModel, builders
from audiocraft.modules.chroma import ChromaExtractor
from audiocraft.modules.transformer import create_sin_embedding
from audiocraft.modules.conditioners import (AttributeDropout, ClassifierFreeGuidanceDropout, ConditionFuser,
                                             ConditioningAttributes, WavCondition, WaveformConditioner,
                                             nullify_wav)
from audiocraft.utils.utils import length_to_mask
from omegaconf import OmegaConf

from ..errors import SynthGenError
from . import PRETRAINED_MUSICGEN
MIX, CHROMA, TEXT = "mix", "self_wav", "description"
FUSE_CHOICES = ("auto", "sum+cross", "cross", "sum", "prepend")


@dataclass
class SynthGenConfig:
    """Settings of a SynthGen model (stored in its checkpoints).

    Attributes:
        base: ``tiny``, ``facebook/musicgen-melody``, ``facebook/musicgen-small`` or the folder
            of a model written by :func:`export`.
        dim, num_heads, num_layers: width, heads and depth of the ``tiny`` LM.
        n_q, card: codebooks and codebook size of the ``tiny`` EnCodec.
        sample_rate: audio rate of the ``tiny`` EnCodec (pretrained bases use 32 kHz).
        window: seconds per training example / generation window.
        mix_tokens: condition on the mix's EnCodec tokens (our conditioner); off for a
            pretrained MusicGen used as it was released.
        mix_fuse: how the mix tokens reach the LM: ``sum+cross`` (added to the time-aligned
            step and cross-attended), ``cross`` (cross-attention only), ``sum`` (aligned sum
            only), ``prepend``, or ``auto``: ``sum+cross`` when the LM has cross-attention
            layers (tiny, musicgen-small), else ``sum`` (musicgen-melody prepends its conditions
            and has none).
        use_chroma: condition on the mix's chroma as well (``self_wav``).
        demucs_chroma: keep audiocraft's own ChromaStemConditioner where the base has one
            (musicgen-melody): Demucs removes drums and bass before the chroma, exactly as
            released. For generating with the pretrained model; training reads the chroma cached
            at encode time instead, so encode refuses this setting.
        text_dropout, mix_dropout, cfg_dropout: per-example training dropout of the description,
            of the mix conditions, and of all conditions at once (for classifier-free guidance).
        lora_rank: rank of the LoRA adapters; 0 fine-tunes every LM weight.
        lora_alpha: LoRA scale numerator (the update is ``B @ A * alpha / rank``).
        gradient_checkpointing: recompute transformer layers in the backward pass.
        default_description: the description used when none is given.
        seed: initialisation seed of the ``tiny`` model and of the new conditioners.
    """

    base: str = "tiny"
    dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    n_q: int = 4
    card: int = 256
    sample_rate: int = 16000
    window: float = 10.0
    mix_tokens: bool = True
    mix_fuse: str = "auto"
    use_chroma: bool = True
    demucs_chroma: bool = False
    text_dropout: float = 0.1
    mix_dropout: float = 0.1
    cfg_dropout: float = 0.1
    lora_rank: int = 0
    lora_alpha: float = 16.0
    gradient_checkpointing: bool = False
    default_description: str = "synth"
    seed: int = 0

    RANGES: ClassVar[dict] = {"dim": (8, 8192), "num_heads": (1, 128), "num_layers": (1, 128), "n_q": (1, 32),
                              "card": (2, 65536), "sample_rate": (8000, 192_000), "window": (1.0, 120.0),
                              "text_dropout": (0.0, 1.0), "mix_dropout": (0.0, 1.0), "cfg_dropout": (0.0, 1.0),
                              "lora_rank": (0, 4096), "lora_alpha": (0.0, 1e6)}

    def __post_init__(self) -> None:
        if self.mix_fuse not in FUSE_CHOICES:
            raise ValueError(f"mix_fuse must be one of {', '.join(FUSE_CHOICES)}, got {self.mix_fuse!r}")
        for name in ("text_dropout", "mix_dropout", "cfg_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")


def _frames(x: WavCondition, width: int) -> torch.Tensor:
    """The ``(batch, frames, width)`` features packed time-major into a WavCondition's ``wav``.

    audiocraft collates wav conditions as mono ``(1, 1, samples)`` tensors, so features ride
    flattened along the sample axis; a nullified condition (one sample) gives zero frames.
    """
    wav = x.wav.reshape(x.wav.shape[0], -1)
    n = wav.shape[-1] // width
    return wav[:, : n * width].reshape(wav.shape[0], n, width)


def _to_device(x: WavCondition, device: torch.device) -> WavCondition:
    # the parent moves to the device given at construction; ours follow their weights
    return WavCondition(x.wav.to(device), x.length.to(device), x.sample_rate, x.path, x.seek_time)


def pack(features: torch.Tensor) -> WavCondition:
    """One example's ``(frames, width)`` features as a WavCondition (see :func:`_frames`)."""
    flat = features.float().reshape(1, 1, -1)
    return WavCondition(flat, torch.tensor([flat.shape[-1]]), [0], [None], [None])


class MixTokensConditioner(WaveformConditioner):
    """The mix's EnCodec tokens ``(frames, n_q)`` → one embedding per frame for the LM.

    A WaveformConditioner so audiocraft's ConditioningProvider routes, collates and nullifies
    it like any audio condition; unlike the parent, gradients flow into its embeddings.
    """

    def __init__(self, n_q: int, card: int, dim: int, output_dim: int, device: str = "cpu"):
        super().__init__(dim, output_dim, device)
        self.n_q, self.card = n_q, card
        self.emb = nn.ModuleList(nn.Embedding(card, dim) for _ in range(n_q))

    @torch.no_grad()
    def start_from(self, lm: nn.Module) -> "MixTokensConditioner":
        """Start as the LM's own token embedding (copied, then trained apart): at the first
        step a mix token already means to the LM what the same synth token means."""
        for mine, theirs in zip(self.emb, lm.emb):
            mine.weight.copy_(theirs.weight[: self.card])
        if self.dim == self.output_proj.out_features:
            self.output_proj.weight.copy_(torch.eye(self.dim))
            self.output_proj.bias.zero_()
        return self

    def _downsampling_factor(self) -> int:
        return self.n_q

    def _get_wav_embedding(self, x: WavCondition) -> torch.Tensor:
        codes = _frames(x, self.n_q).round().long().clamp(0, self.card - 1)  # (B, F, K)
        batch, frames = codes.shape[:2]
        if frames == 0:
            return torch.zeros(batch, 1, self.dim, device=x.wav.device)
        # codebook k is delayed by k frames, as the LM's delay pattern lays out the synth tokens:
        # sequence step t then holds the mix tokens of exactly the synth tokens predicted there
        h = sum(nn.functional.pad(emb(codes[..., k]), (0, 0, k, 0))[:, :frames] for k, emb in enumerate(self.emb))
        # the same time embedding the LM adds to its own input: aligned frames start out similar
        positions = torch.arange(frames, device=h.device).view(1, -1, 1)
        return h + create_sin_embedding(positions, self.dim)

    def tokenize(self, x: WavCondition) -> WavCondition:
        return _to_device(x, self.output_proj.weight.device)

    def forward(self, x: WavCondition):
        embeds = self.output_proj(self._get_wav_embedding(x))
        mask = length_to_mask(x.length // self.n_q, max_len=embeds.shape[1]).int()
        return embeds * mask.unsqueeze(-1), mask


class MixChromaConditioner(WaveformConditioner):
    """Cached chroma frames ``(frames, n_chroma)`` of the mix → the melody chroma pathway.

    Holds the same ``chroma`` extractor and ``output_proj`` as audiocraft's
    ChromaStemConditioner, so pretrained ``self_wav`` weights load into it unchanged; it takes
    the chroma that encode computed instead of running Demucs and the extractor itself.
    """

    def __init__(self, output_dim: int, chroma: ChromaExtractor, device: str = "cpu"):
        super().__init__(chroma.n_chroma, output_dim, device)
        self.chroma = chroma

    def _downsampling_factor(self) -> int:
        return self.chroma.n_chroma

    def tokenize(self, x: WavCondition) -> WavCondition:
        return _to_device(x, self.output_proj.weight.device)

    def _get_wav_embedding(self, x: WavCondition) -> torch.Tensor:
        frames = _frames(x, self.chroma.n_chroma)
        if frames.shape[1] == 0:
            return torch.zeros(frames.shape[0], 1, self.chroma.n_chroma, device=x.wav.device)
        return frames


class MixFuser(ConditionFuser):
    """audiocraft's ConditionFuser plus an **aligned sum**: frame ``t`` of a condition is added
    to sequence step ``t`` — over the whole sequence in training, one step at a time while
    generating (the streaming offset says which step). audiocraft's own ``sum`` needs the
    whole sequence at once, so it cannot generate.

    :class:`MixTokensConditioner` lays its frames out with the LM's delay pattern, so the mix
    tokens added at a step are those of exactly the synth tokens predicted there.
    """

    def __init__(self, base: ConditionFuser):
        super().__init__({how: list(names) for how, names in base.fuse2cond.items()},
                         base.cross_attention_pos_emb, base.cross_attention_pos_emb_scale)
        self.aligned: list[str] = []

    def forward(self, input: torch.Tensor, conditions: dict):
        steps = input.shape[1]
        offsets = self._streaming_state.get("offsets")
        start = int(offsets[0]) if offsets is not None else 0
        for name in self.aligned:
            if name in conditions:
                cond = conditions[name][0][:, start:start + steps]
                input = input + nn.functional.pad(cond, (0, 0, 0, steps - cond.shape[1]))
        return super().forward(input, {k: v for k, v in conditions.items() if k in self.cond2fuse})


class LoRA(nn.Module):
    """Parametrization ``W -> W + B @ A * scale`` (``B`` starts at zero: the model is unchanged
    until training moves it)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float):
        super().__init__()
        out_features, in_features = weight.shape
        self.a = nn.Parameter(torch.randn(rank, in_features, device=weight.device) / math.sqrt(in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank, device=weight.device))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.b @ self.a).to(weight.dtype) * self.scale


def _lora_targets(lm: nn.Module) -> list[tuple[nn.Module, str]]:
    """The attention (``in_proj_weight``, ``out_proj``) and feed-forward (``linear1/2``) weight
    matrices of every transformer layer, self- and cross-attention alike."""
    targets = []
    for layer in lm.transformer.layers:
        for module in layer.modules():
            for name, p in module.named_parameters(recurse=False):
                if p.dim() == 2 and (name == "in_proj_weight" or (name == "weight" and isinstance(module, nn.Linear))):
                    targets.append((module, name))
    return targets


# ---------------------------------------------------------------------------------------------
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


def _build_tiny(c: SynthGenConfig) -> tuple[nn.Module, nn.Module, dict, dict]:
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


def _safe_extra(path: Path) -> dict:
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


def _load_base(base: str, device: str) -> tuple[nn.Module, nn.Module, dict | None, dict | None]:
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


class SynthGen(nn.Module):
    """MusicGen's LM + EnCodec with the mix conditioners (see the module docstring).

    Args:
        config: :class:`SynthGenConfig`.
        device: where a pretrained base is loaded (``tiny`` is built on CPU).
    """

    family = "synthgen"
    task = "generator"
    options: dict[str, str] = {}

    def __init__(self, config: SynthGenConfig | None = None, device: str = "cpu"):
        super().__init__()
        self.config = c = config or SynthGenConfig()
        if c.base == "tiny":
            lm, codec, self.lm_cfg, self.codec_cfg = _build_tiny(c)
        else:
            lm, codec, self.lm_cfg, self.codec_cfg = _load_base(c.base, device)
        self.lm, self.codec = lm, codec
        # our per-condition dropout (see conditions()) replaces the LM's own
        self.lm.cfg_dropout, self.lm.att_dropout = ClassifierFreeGuidanceDropout(p=0.0), AttributeDropout(p={})
        for p in self.codec.parameters():
            p.requires_grad_(False)
        self.sample_rate, self.frame_rate = int(codec.sample_rate), float(codec.frame_rate)
        self.n_q, self.card = int(lm.n_q), int(lm.card)
        self.native = set(lm.condition_provider.conditioners)  # what audiocraft's own config builds
        self.lm.fuser = MixFuser(self.lm.fuser)
        self._add_conditioners(device)
        extra = Path(c.base) / "synthgen.pt"
        if c.base != "tiny" and Path(c.base).is_dir() and not extra.is_file():
            from . import CheckpointError

            raise CheckpointError(f"{extra}: missing — without it the mix conditioners would be untrained; a "
                                  "SynthGen export folder holds state_dict.bin, compression_state_dict.bin and "
                                  "synthgen.pt: copy the whole folder")
        if c.base != "tiny" and extra.is_file():  # an export: our conditioners' weights
            for name, state in _safe_extra(extra)["conditioners"].items():
                if name in self.conditioners:
                    self.conditioners[name].load_state_dict(state)
        if c.lora_rank:
            for p in self.lm.parameters():
                p.requires_grad_(False)
            for module, name in _lora_targets(self.lm):
                parametrize.register_parametrization(module, name, LoRA(getattr(module, name), c.lora_rank,
                                                                        c.lora_alpha))
            for name in (MIX, CHROMA):  # our conditioners (and the chroma projection) train in full
                if name in self.conditioners:
                    for p in self.conditioners[name].parameters():
                        p.requires_grad_(True)
        self.lm.transformer.checkpointing = "torch" if c.gradient_checkpointing else "none"

    @property
    def conditioners(self) -> nn.ModuleDict:
        return self.lm.condition_provider.conditioners

    def _add_conditioners(self, device: str) -> None:
        c, fuser = self.config, self.lm.fuser
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed + 1)
            if c.use_chroma and c.demucs_chroma and CHROMA in self.native:
                pass  # audiocraft's conditioner stays: it takes the mix waveform (see conditions())
            elif c.use_chroma:
                old = self.conditioners[CHROMA] if CHROMA in self.native else None
                chroma = old.chroma if old is not None else ChromaExtractor(self.sample_rate, n_chroma=12,
                                                                            radix2_exp=12 if self.sample_rate <= 16000 else 13)
                new = MixChromaConditioner(self.lm.dim, copy.deepcopy(chroma), device)
                if old is not None:
                    new.output_proj.load_state_dict(old.output_proj.state_dict())
                self.conditioners[CHROMA] = new.to(device)
                self._fuse(CHROMA, fuser.cond2fuse.get(CHROMA, "prepend"))
            elif CHROMA in self.native:
                del self.conditioners[CHROMA]
                self._unfuse(CHROMA)
            if c.mix_tokens:
                self.conditioners[MIX] = MixTokensConditioner(self.n_q, self.card, self.lm.dim, self.lm.dim,
                                                              device).to(device).start_from(self.lm)
                how = c.mix_fuse
                if how == "auto":
                    how = "sum+cross" if self._has_cross_attention() else "sum"
                if how.startswith("sum"):
                    self.lm.fuser.aligned.append(MIX)
                if how != "sum":
                    self._fuse(MIX, how.replace("sum+", ""))

    def _has_cross_attention(self) -> bool:
        return any(getattr(layer, "cross_attention", None) is not None for layer in self.lm.transformer.layers)

    def _fuse(self, name: str, how: str) -> None:
        fuser = self.lm.fuser
        if how == "cross" and not self._has_cross_attention():
            raise SynthGenError(f"{self.config.base}: this LM has no cross-attention layers — use mix_fuse='prepend'")
        self._unfuse(name)
        fuser.fuse2cond[how] = [*fuser.fuse2cond.get(how, []), name]
        fuser.cond2fuse[name] = how

    def _unfuse(self, name: str) -> None:
        fuser = self.lm.fuser
        fuser.fuse2cond = {how: [n for n in names if n != name] for how, names in fuser.fuse2cond.items()}
        fuser.cond2fuse.pop(name, None)

    # -- features --------------------------------------------------------------------------
    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """EnCodec tokens ``(batch, n_q, frames)`` of ``wav`` ``(batch, channels, samples)`` at
        :attr:`sample_rate` (channels are averaged: MusicGen is mono)."""
        codes, _ = self.codec.encode(wav.mean(1, keepdim=True).to(self._device))
        return codes

    @torch.no_grad()
    def mix_chroma(self, wav: torch.Tensor) -> torch.Tensor | None:
        """Chroma ``(batch, frames, 12)`` of ``wav`` (``None`` when the model uses no chroma;
        the mono waveform itself when audiocraft's Demucs chroma conditioner is kept, which
        computes its chroma from the audio)."""
        if CHROMA not in self.conditioners:
            return None
        mono = wav.mean(1, keepdim=True).to(self._device)
        if not isinstance(self.conditioners[CHROMA], MixChromaConditioner):
            return mono[:, 0]
        return self.conditioners[CHROMA].chroma(mono).float()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio ``(batch, 1, samples)`` of tokens ``(batch, n_q, frames)``."""
        return self.codec.decode(codes.to(self._device), None)

    @property
    def _device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def conditions(self, mix_codes: torch.Tensor, chroma: torch.Tensor | None, descriptions: list[str | None],
                   dropout: bool = False) -> list[ConditioningAttributes]:
        """audiocraft conditioning attributes for a batch, with the training dropout if asked.

        Args:
            mix_codes: ``(batch, n_q, frames)`` tokens of the mix.
            chroma: ``(batch, frames, 12)`` chroma of the mix, or ``None``.
            descriptions: one text (or ``None``: the default description) per example.
            dropout: drop conditions at the configured rates (training).
        """
        c, batch = self.config, mix_codes.shape[0]
        drop_all = torch.rand(batch) < c.cfg_dropout if dropout else torch.zeros(batch, dtype=torch.bool)
        drop_text = drop_all | (torch.rand(batch) < c.text_dropout) if dropout else drop_all
        drop_mix = drop_all | (torch.rand(batch) < c.mix_dropout) if dropout else drop_all
        out = []
        for i in range(batch):
            wav = {MIX: pack(mix_codes[i].T)} if MIX in self.conditioners else {}
            if CHROMA in self.conditioners:
                if chroma is None:
                    raise SynthGenError("this SynthGen model conditions on chroma: pass the mix chroma")
                if isinstance(self.conditioners[CHROMA], MixChromaConditioner):
                    wav[CHROMA] = pack(chroma[i])
                else:  # audiocraft's own: the mix waveform at our rate
                    audio = chroma[i].float().reshape(1, 1, -1)
                    wav[CHROMA] = WavCondition(audio, torch.tensor([audio.shape[-1]]), [self.sample_rate], [None],
                                               [None])
            if drop_mix[i]:
                wav = {k: nullify_wav(v) for k, v in wav.items()}
            text = None if drop_text[i] else (descriptions[i] or c.default_description)
            out.append(ConditioningAttributes(text={TEXT: text}, wav=wav))
        return out

    # -- training --------------------------------------------------------------------------
    def loss(self, synth_codes: torch.Tensor, mix_codes: torch.Tensor, chroma: torch.Tensor | None,
             descriptions: list[str | None], return_estimate: bool = False):
        """Cross-entropy of the synth tokens, averaged over codebooks, under the delay pattern.

        Positions the pattern leaves undefined (NaN logits) are excluded. Conditions are
        dropped at the configured rates while the model is in training mode.
        """
        conditions = self.conditions(mix_codes, chroma if chroma is not None and chroma.numel() else None,
                                     descriptions, dropout=self.training)
        loss = self.token_loss(synth_codes, conditions)
        return (loss, None) if return_estimate else loss

    def token_loss(self, synth_codes: torch.Tensor, conditions: list[ConditioningAttributes]) -> torch.Tensor:
        """Mean over codebooks of the cross-entropy of ``synth_codes`` given ``conditions``."""
        out = self.lm.compute_predictions(synth_codes.long(), conditions)
        losses = []
        for k in range(self.n_q):
            valid = out.mask[:, k].bool()
            losses.append(nn.functional.cross_entropy(out.logits[:, k][valid].float(), synth_codes[:, k][valid].long()))
        return torch.stack(losses).mean()

    # -- generation ------------------------------------------------------------------------
    @torch.no_grad()
    def generate_codes(self, mix_codes: torch.Tensor, chroma: torch.Tensor | None, description: str | None = None,
                       prompt: torch.Tensor | None = None, *, use_sampling: bool = True, temperature: float = 1.0,
                       top_k: int = 250, top_p: float = 0.0, cfg_coef: float = 3.0) -> torch.Tensor:
        """Synth tokens ``(1, n_q, frames)`` for one window's mix tokens ``(1, n_q, frames)``.

        ``prompt`` ``(1, n_q, p)`` fixes the first ``p`` frames (the tail of the previous window).
        """
        self.eval()
        frames = mix_codes.shape[-1]
        conditions = self.conditions(mix_codes, chroma, [description])
        return self.lm.generate(prompt, conditions, max_gen_len=frames, use_sampling=use_sampling,
                                temp=temperature, top_k=min(top_k, self.card), top_p=top_p,
                                cfg_coef=cfg_coef, two_step_cfg=False)

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, *args, **kwargs):  # noqa: D102 - see class docstring
        """The tiny model in full; a pretrained base only what training changes (the base
        weights reload from their name)."""
        full = super().state_dict(*args, **kwargs)
        if self.config.base == "tiny":
            return full
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {f"lm.condition_provider.conditioners.{name}." for name in (MIX, CHROMA)}
        return type(full)((k, v) for k, v in full.items()
                          if k in keep or any(k.startswith(p) for p in keep if p.endswith(".")))

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state, strict=False, assign=assign)
        if strict and (result.unexpected_keys or (self.config.base == "tiny" and result.missing_keys)):
            raise RuntimeError(f"state does not fit: unexpected {result.unexpected_keys[:3]}, "
                               f"missing {result.missing_keys[:3]}")
        return result

    def parameter_counts(self) -> dict[str, int]:
        """``{"trainable": n, "total": n}`` parameters of the LM and its conditioners."""
        params = list(self.lm.parameters())
        return {"trainable": sum(p.numel() for p in params if p.requires_grad),
                "total": sum(p.numel() for p in params)}

    def codec_fingerprint(self) -> str:
        """A hash of the EnCodec weights: tokens are only comparable under the same codec."""
        h = hashlib.sha256()
        for name, v in sorted(self.codec.state_dict().items()):
            h.update(name.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def native_lm_state(self) -> dict[str, torch.Tensor]:
        """The LM weights audiocraft's own config describes, LoRA merged in: what
        ``load_lm_model`` expects in ``state_dict.bin``."""
        state = {}
        for key, value in self.lm.state_dict().items():
            if ".parametrizations." not in key:
                state[key] = value
            elif key.endswith(".original"):  # the LoRA-adapted weight, merged: W + B·A·scale
                owner, name = key[: -len(".original")].split(".parametrizations.")
                state[f"{owner}.{name}"] = getattr(self.lm.get_submodule(owner), name)
        ours = {f"condition_provider.conditioners.{n}." for n in (MIX, CHROMA) if n not in self.native}
        return {k: v.detach().cpu().clone() for k, v in state.items() if not any(k.startswith(p) for p in ours)}


@dataclass
class ConditioningReport:
    """Validation cross-entropy (nats per token) with the true mix, another window's mix, and
    no mix at all: how much the model listens to the mix."""

    true_mix: float
    shuffled_mix: float
    no_mix: float
    windows: int

    def format(self) -> str:
        return (f"validation cross-entropy over {self.windows} windows (nats per token): true mix {self.true_mix:.3f}, "
                f"shuffled mix {self.shuffled_mix:.3f}, no mix {self.no_mix:.3f}")


@torch.no_grad()
def conditioning_report(model: "SynthGen | str | Path", dataset, batch_size: int = 16) -> ConditioningReport:
    """Score ``dataset`` (a :class:`~synthgen_lib.encode.CodesDataset`) three ways. For the
    shuffled score window ``i`` gets window ``i - 1``'s mix (with a single window: its own
    mix rotated by half its length, so every frame meets another moment of the song)."""
    from . import load_model

    net = model if isinstance(model, nn.Module) else load_model(model, family="synthgen")
    net.eval()
    n = len(dataset)
    if n == 0:
        raise SynthGenError("conditioning_report needs at least one window")
    items = [dataset[i] for i in range(n)]
    synth, mix, chroma = (torch.stack([x[j] for x in items]).to(net._device) for j in range(3))
    text = [x[3] for x in items]
    if n == 1:
        other_mix, other_chroma = mix.roll(mix.shape[-1] // 2, -1), chroma.roll(chroma.shape[1] // 2, 1)
    else:
        other_mix, other_chroma = mix.roll(1, 0), chroma.roll(1, 0)
    totals = {"true": 0.0, "shuffled": 0.0, "none": 0.0}
    for i in range(0, n, batch_size):
        s = slice(i, i + batch_size)
        b = len(text[s])
        totals["true"] += net.loss(synth[s], mix[s], chroma[s], text[s]).item() * b
        totals["shuffled"] += net.loss(synth[s], other_mix[s], other_chroma[s], text[s]).item() * b
        conditions = net.conditions(mix[s], chroma[s] if chroma.numel() else None, text[s])
        for c in conditions:
            c.wav = {k: nullify_wav(v) for k, v in c.wav.items()}
        totals["none"] += net.token_loss(synth[s], conditions).item() * b
    return ConditioningReport(totals["true"] / n, totals["shuffled"] / n, totals["none"] / n, n)


def export(model: SynthGen, folder: str | Path, half: bool = False) -> Path:
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
