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
needs LoRA and gradient checkpointing — see ``bench/synthgen.py``). ``gradient_checkpointing`` recomputes each layer
in the backward pass. The EnCodec model and T5 stay frozen.

Bases: ``tiny`` builds a small random LM and EnCodec from audiocraft's builders (offline, for
tests and CPU smoke runs; its codebooks are initialised by k-means on the synthetic generator,
seeded); ``facebook/musicgen-melody`` / ``facebook/musicgen-small`` load the pretrained models
the way audiocraft does (needs internet, a GPU advised); a folder written by :func:`~synthgen_lib.models.synthgen_io.export`
reloads a fine-tuned model.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import audiocraft_compat  # noqa: F401  (first: audiocraft imports xformers.ops)
from audiocraft.modules.chroma import ChromaExtractor
from audiocraft.modules.transformer import create_sin_embedding
from audiocraft.modules.conditioners import (AttributeDropout, ClassifierFreeGuidanceDropout, ConditionFuser,
                                             ConditioningAttributes, WavCondition, WaveformConditioner,
                                             nullify_wav)
from audiocraft.utils.utils import length_to_mask

from ..errors import SynthGenError
MIX, CHROMA, TEXT = "mix", "self_wav", "description"
FUSE_CHOICES = ("auto", "sum+cross", "cross", "sum", "prepend")


@dataclass
class SynthGenConfig:
    """Settings of a SynthGen model (stored in its checkpoints).

    Attributes:
        base: ``tiny``, ``facebook/musicgen-melody``, ``facebook/musicgen-small`` or the folder
            of a model written by :func:`~synthgen_lib.models.synthgen_io.export`.
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
    # the length lives where the features do: audiocraft concatenates the lengths of a batch, some
    # of which (dropped conditions, nullify_wav) it makes on the features' device
    return WavCondition(flat, torch.tensor([flat.shape[-1]], device=flat.device), [0], [None], [None])


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


class SynthGen(nn.Module):
    """MusicGen's LM + EnCodec with the mix conditioners (see the module docstring).

    Args:
        config: :class:`SynthGenConfig`.
        device: where a pretrained base is loaded (``tiny`` is built on CPU).
    """

    family = "synthgen"
    task = "generator"
    options: dict[str, str] = {}
    trains_on = "tokens"  # the folder 'synthgen encode' writes, not audio
    ddp_unused_parameters = True  # dropped conditions leave conditioner weights without gradient in some steps

    def training_meta(self, train_set) -> dict:
        """What checkpoints record of the training data: the descriptions it was told (the
        Generate panel offers the closest ones)."""
        return {"descriptions": sorted({x["description"] for x in train_set.items})[:2000]}

    def __init__(self, config: SynthGenConfig | None = None, device: str = "cpu"):
        from .synthgen_io import build_tiny, load_base, read_extra  # the files module imports this one

        super().__init__()
        self.config = c = config or SynthGenConfig()
        if c.base == "tiny":
            lm, codec, self.lm_cfg, self.codec_cfg = build_tiny(c)
        else:
            lm, codec, self.lm_cfg, self.codec_cfg = load_base(c.base, device)
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
            for name, state in read_extra(extra)["conditioners"].items():
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
                    wav[CHROMA] = WavCondition(audio, torch.tensor([audio.shape[-1]], device=audio.device),
                                               [self.sample_rate], [None], [None])
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
