"""``train``: one training loop for every model family.

The loop is short on purpose; the pieces it uses are small:

* :class:`SegmentDataset` — random ``segment``-second crops of the training windows with
  separation augmentations (per-stem random gain, remixing a synth with another track's
  accompaniment, channel swap, polarity flip). The crop position and every augmentation are
  drawn from a generator seeded by ``(seed, epoch, index)``, so an epoch is the same whatever
  the number of workers or processes, and a resumed run sees the same data.
* AdamW with linear warm-up then cosine decay, gradient clipping, mixed precision on CUDA
  (bf16 where the GPU has it natively, else fp16 with a gradient scaler).
* Validation on the held-out tracks after every epoch: loss (picks the **best** checkpoint)
  and SI-SDR (reported).
* ``last.pt`` (written every ``save_every`` steps and at the end of each epoch) holds the
  optimizer, scheduler, step, epoch and RNG state; ``best.pt`` the weights with the lowest
  validation loss. Both are written atomically. Running ``train`` again on the same output
  folder resumes from ``last.pt`` — mid-epoch included — and reaches the same state as a run
  that was never interrupted.
* ``metrics.jsonl`` gets one JSON line per epoch (and per ``log_every`` steps) for plots.
* Under ``torchrun --nproc_per_node N`` it runs as DistributedDataParallel (gloo on CPU,
  nccl on GPU): each process takes every N-th batch of the epoch; rank 0 validates and saves.
* ``init`` starts a new run from a trained checkpoint (a bundled model's name or a path) instead
  of a random initialisation: fine-tuning on one's own data, or training a model further with a
  new schedule. Everything the checkpoint learnt is kept (weights, SynthLSTM's input
  normalisation, SynthMatch's statistics and database); the optimizer, schedule and step start
  afresh.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .audio import SAMPLE_RATE
from .data import TrackSource, WindowSet, make_windows, open_source
from .data.queries import QueryPicker, query_variant, roles_named
from .data.windows import Window
from .device import amp_dtype, default_device
from .errors import SynthGenError
from .evaluate import si_sdr
from .fileio import atomic_path
from .models import (BUNDLED, CheckpointError, build_model, check_model_settings, config_fields, load_checkpoint,
                     load_weights, resolve, save_checkpoint)
from .models.query import default_embedding, embed_queries


@dataclass
class TrainConfig:
    """Settings of a training run (stored in its checkpoints).

    Attributes:
        model: model family, ``lstm``, ``encoder``, ``synthmatch`` or ``synthgen`` (trains on
            an encoded dataset folder: see :func:`synthgen_lib.encode.encode`).
        epochs: passes over the training windows.
        batch_size: examples per step (per process under DDP).
        accumulate: micro-batches of ``batch_size`` whose gradients add up before each
            optimizer step (a larger effective batch in the same memory).
        segment: seconds of audio per training example (a random crop of a window).
        lr: peak learning rate after warm-up.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps; then cosine decay to ``lr * final_lr_ratio``.
        final_lr_ratio: learning rate at the last step, relative to ``lr``.
        grad_clip: clip the gradient norm to this value (0: off).
        steps_per_epoch: batches per epoch; ``None`` covers each training window once.
        augment: apply the separation augmentations.
        gain_db: per-stem random gain range (± dB).
        eq_db: per-stem random equaliser range (± dB at each of its control frequencies; 0: off).
            Each stem gets its own smooth gain curve over log-frequency, so a sound's spectral
            envelope (one SoundFont's, one synth's) is a weaker cue than its harmonics and
            behaviour in time.
        remix_prob: chance of pairing the synth with another window's accompaniment.
        valid_segment: seconds of each validation window used (``None``: whole window).
        max_valid_windows: cap on validation windows per epoch (``None``: all).
        window, hop, valid_fraction: how tracks are cut and split (see ``make_windows``).
        channels: channels of the training audio (models treat channels independently).
        sample_rate: audio rate in Hz.
        seed: seeds the split, the data order, augmentations and initialisation.
        save_every: also write ``last.pt`` every this many steps (0: only per epoch).
        log_every: write a train-loss line to ``metrics.jsonl`` every this many steps.
        num_workers: DataLoader worker processes.
        amp: use mixed precision when training on CUDA.
        cache_audio: keep each track's audio in memory after its first read.
        queries: share of examples that carry a text query (0: none, the model takes no queries).
            Above 0 the separator is built, or grown from ``init``, with query layers, and such
            an example asks for one synth part by a shortened variant of its description (target:
            that part) or, with chance ``query_negatives``, for a role no part of the track plays
            (target: silence); see :mod:`synthgen_lib.data.queries`.
        query_negatives: share of query examples that name a part the track does not have.
        query_mix: share of the other query examples given a second synth: the one-part synth of
            another track whose roles this track lacks, added to the mix; either is then asked
            for. Every such example teaches telling two synth parts apart, which the tracks with
            two parts alone (about three in ten) teach too rarely.
        query_mix_absent: share of the examples that name a part the track lacks given a second
            synth too (from a track that lacks that part as well; the target stays silence), so
            that a second synth in the mix does not by itself mean that the part asked for plays.
        query_only: train only the query layers: the rest of the model (an ``init`` checkpoint's
            weights) stays as it is, so the answer without a query stays exactly the starting
            model's; every example then carries a query.
        query_layers: which query layers ``query_only`` trains: ``all``, or ``gate`` (the presence
            gate alone, :class:`~synthgen_lib.models.query.QueryGate`: the answers to queries
            then change by their level only).
    """

    model: str = "lstm"
    epochs: int = 10
    batch_size: int = 8
    accumulate: int = 1
    segment: float = 4.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    steps_per_epoch: int | None = None
    augment: bool = True
    gain_db: float = 6.0
    eq_db: float = 0.0
    remix_prob: float = 0.5
    valid_segment: float | None = None
    max_valid_windows: int | None = None
    window: float = 10.0
    hop: float = 5.0
    valid_fraction: float = 0.1
    channels: int = 2
    sample_rate: int = SAMPLE_RATE
    seed: int = 0
    save_every: int = 0
    log_every: int = 25
    num_workers: int = 0
    amp: bool = True
    cache_audio: bool = True
    queries: float = 0.0
    query_negatives: float = 0.25
    query_mix: float = 0.5
    query_mix_absent: float = 0.0
    query_only: bool = False
    query_layers: str = "all"


@dataclass
class TrainResult:
    """What a run ended with."""

    output_dir: Path
    step: int
    epoch: int
    best_valid_loss: float
    history: list[dict] = field(default_factory=list)

    @property
    def best(self) -> Path:
        return self.output_dir / "best.pt"

    @property
    def last(self) -> Path:
        return self.output_dir / "last.pt"


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash(tuple(parts)) % (2 ** 63))


class SegmentDataset(torch.utils.data.Dataset):
    """Random ``segment``-second crops of ``windows``, augmented for separation.

    Item ``i`` of epoch ``e`` is a deterministic function of ``(seed, e, i)``: call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(self, source: TrackSource, windows: list[Window], cfg: TrainConfig, augment: bool,
                 segment: float | None = None):
        self.source, self.windows, self.cfg, self.augment = source, windows, cfg, augment
        self.segment = segment or cfg.segment
        self.epoch = 0
        self._cache: dict[str, Any] = {}
        self.query_embedding: str | None = None  # set by train() when the examples carry queries
        self.queries = 1.0 if cfg.query_only else cfg.queries
        self.picker = QueryPicker([source.info(t) for t in sorted({w.track for w in windows})],
                                  cfg.query_negatives) if self.queries > 0 else None
        self._partner_cache: dict[frozenset, list[int]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def _read(self, w: Window, offset: float, part: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mix, synth)`` of a crop; with ``part``, that synth part instead of the whole synth
        (``""``: the whole synth)."""
        cfg, n = self.cfg, int(round(self.segment * self.cfg.sample_rate))
        if cfg.cache_audio:
            if w.track not in self._cache:
                self._cache[w.track] = self.source.load(w.track, cfg.sample_rate, cfg.channels)
            audio = self._cache[w.track]
            start = int(round((w.start + offset) * cfg.sample_rate))
            synth = audio.parts[part] if part else audio.synth
            mix, synth = audio.mix[:, start:start + n], synth[:, start:start + n]
            pad = n - mix.shape[-1]
            if pad > 0:
                mix, synth = (nn.functional.pad(x, (0, pad)) for x in (mix, synth))
            return mix, synth
        audio = self.source.load(w.track, cfg.sample_rate, cfg.channels, w.start + offset, self.segment)
        return audio.mix, audio.parts[part] if part else audio.synth

    def _room(self, w: Window) -> float:
        """How far a crop may start into ``w`` and still end inside the track's real audio
        (a padded window of a short track would otherwise give crops of silence)."""
        audible = min(w.length, self.source.info(w.track).duration - w.start)
        return max(0.0, audible - self.segment)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        """``(mix, synth)``, or with queries ``(mix, target, query embedding)``: the target is the
        part the query asks for (silence for a part the track lacks; the whole synth and a row of
        zeros for an example without a query)."""
        w = self.windows[i]
        g = _seeded(self.cfg.seed, self.epoch, i)
        room = self._room(w)
        offset = float(torch.rand((), generator=g)) * room if self.augment else room / 2
        if self.picker is None:
            return self._example(w, i, g, offset)
        query, part = None, ""
        if float(torch.rand((), generator=g)) < self.queries:
            query, part = self.picker.pick(self.source.info(w.track), g, vary=self.augment)
        mix, target = self._example(w, i, g, offset, part)
        if query is not None and float(torch.rand((), generator=g)) < (
                self.cfg.query_mix if part is not None else self.cfg.query_mix_absent):
            mix, target, query = self._with_second_synth(w, g, mix, target, query, asks=part is not None)
        return mix, target, embed_queries([query], self.query_embedding or "ngram")[0]

    def _with_second_synth(self, w: Window, g: torch.Generator, mix: torch.Tensor, target: torch.Tensor,
                           query: str, asks: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
        """``(mix, target, query)`` with a second synth in the mix: the one-part synth of another
        track whose roles this track lacks, at a random gain; half the time it is the one asked
        for (by its own description). With ``asks=False`` (a query naming a part the track lacks)
        the second synth lacks the roles the query names too, and is never asked for. Unchanged
        when no track fits."""
        lacks = frozenset() if asks else roles_named(query)
        partners = self._partners(self.source.info(w.track), lacks)
        if not partners:
            return mix, target, query
        other = self.windows[partners[int(torch.randint(len(partners), (), generator=g))]]
        offset = float(torch.rand((), generator=g)) * self._room(other) if self.augment else self._room(other) / 2
        second = self._read(other, offset)[1]
        second = second * 10 ** ((float(torch.rand((), generator=g)) * 2 - 1) * self.cfg.gain_db / 20)
        if asks and float(torch.rand((), generator=g)) < 0.5:
            text = self.source.info(other.track).part_descriptions()[0]
            return mix + second, second, query_variant(text, g) if self.augment else text
        return mix + second, target, query

    def _partners(self, info, lacks: frozenset = frozenset()) -> list[int]:
        """Windows of one-part tracks whose synth names roles, none of which ``info``'s parts play
        nor ``lacks`` names."""
        own = frozenset().union(*(roles_named(d) for d in info.part_descriptions()), lacks)
        if own not in self._partner_cache:
            self._partner_cache[own] = [
                j for j, w in enumerate(self.windows)
                if not (other := self.source.info(w.track)).parts
                and (roles := roles_named(other.part_descriptions()[0])) and not roles & own]
        return self._partner_cache[own]

    def _example(self, w: Window, i: int, g: torch.Generator, offset: float,
                 part: str | None = "") -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented ``(mix, target)`` of window ``w``: the target is the synth, the synth
        part ``part`` names, or silence (``part=None``), each through the synth's augmentations."""
        mix, synth = self._read(w, offset)
        target = synth if part == "" else torch.zeros_like(synth) if part is None else self._read(w, offset, part)[1]
        if not self.augment:
            return mix, target
        accomp = mix - synth
        if len(self.windows) > 1 and float(torch.rand((), generator=g)) < self.cfg.remix_prob:
            j = int(torch.randint(len(self.windows) - 1, (), generator=g))
            other = self.windows[j + (j >= i)]
            if other.track != w.track:
                m2, s2 = self._read(other, float(torch.rand((), generator=g)) * self._room(other))
                accomp = m2 - s2
        gains = 10 ** ((torch.rand(2, generator=g) * 2 - 1) * self.cfg.gain_db / 20)
        synth, accomp, target = synth * gains[0], accomp * gains[1], target * gains[0]
        if synth.shape[0] == 2 and float(torch.rand((), generator=g)) < 0.5:
            synth, accomp, target = synth.flip(0), accomp.flip(0), target.flip(0)
        if float(torch.rand((), generator=g)) < 0.5:
            synth, accomp, target = -synth, -accomp, -target
        if self.cfg.eq_db > 0:
            state = g.get_state()
            synth = random_eq(synth, self.cfg.sample_rate, self.cfg.eq_db, g)
            if part != "":  # the same curve as the synth's
                target = random_eq(target, self.cfg.sample_rate, self.cfg.eq_db, torch.Generator().set_state(state))
            accomp = random_eq(accomp, self.cfg.sample_rate, self.cfg.eq_db, g)
        return synth + accomp, synth if part == "" else target


EQ_POINTS = (60.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0, 14000.0)
"""Control frequencies (Hz) of :func:`random_eq`'s gain curve."""


def random_eq(audio: torch.Tensor, sample_rate: int, range_db: float, generator: torch.Generator) -> torch.Tensor:
    """``audio`` ``(channels, samples)`` through a random smooth equaliser: a gain drawn in
    ±``range_db`` at each of :data:`EQ_POINTS`, interpolated linearly over log-frequency (flat
    beyond the first and last point), the same for every channel, applied in the frequency
    domain (zero phase)."""
    n = audio.shape[-1]
    gains_db = (torch.rand(len(EQ_POINTS), generator=generator) * 2 - 1) * range_db
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate).clip(EQ_POINTS[0])  # 0 Hz has no logarithm; flat there anyway
    curve_db = torch.from_numpy(np.interp(np.log(freqs), np.log(EQ_POINTS), gains_db.numpy())).float()
    spectrum = torch.fft.rfft(audio.float(), dim=-1) * 10 ** (curve_db / 20)
    return torch.fft.irfft(spectrum, n=n, dim=-1).to(audio.dtype)


def lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate relative to ``cfg.lr``: linear warm-up over ``cfg.warmup_steps``, then
    cosine decay to ``cfg.final_lr_ratio`` as ``progress`` (0..1 of the run) goes to 1."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, max(0.0, progress))
    return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """:func:`lr_factor` by step, the decay spread over the steps after warm-up."""
    return lambda step: lr_factor(cfg, step, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))


def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":  # each process on its own GPU before NCCL starts
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def _to(batch: list | tuple, device: torch.device) -> list:
    return [x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x for x in batch]


def _split(batch: list, parts: int) -> list[list]:
    """``parts`` micro-batches of a collated batch (tensors and lists alike)."""
    size = math.ceil(len(batch[0]) / parts)
    return [[x[i:i + size] for x in batch] for i in range(0, len(batch[0]), size)]


@torch.no_grad()
def validate(model: nn.Module, loader, device: torch.device) -> dict[str, float]:
    """Mean validation loss, and median SI-SDR (dB) of the synth estimates for the
    separation models (``model.loss(*batch)`` with ``batch[1]`` the reference synth)."""
    model.eval()
    losses, scores = [], []
    for batch in loader:
        batch = _to(batch, device)
        loss, estimate = model.loss(*batch, return_estimate=True)
        losses.append(float(loss) * len(batch[0]))
        if estimate is not None:  # a silent target (a query for a part the track lacks) has no SI-SDR
            audible = batch[1].abs().flatten(0, -2).amax(-1) > 0
            scores += si_sdr(estimate, batch[1]).flatten()[audible].tolist()
    model.train()
    n = len(loader.dataset)
    metrics = {"valid_loss": sum(losses) / n}
    if scores:
        metrics["valid_si_sdr"] = float(torch.tensor(scores).median())
    return metrics


@torch.no_grad()
def init_from_data(model: nn.Module, dataset, device: str | torch.device = "cpu", examples: int = 16) -> None:
    """Initialise what a model takes from data before training: SynthLSTM's input
    normalisation, from the mixes of the first ``examples`` items of ``dataset``; SynthMatch's
    descriptor statistics and segment database, from ``config.database_examples`` items spread
    over the whole dataset."""
    if hasattr(model, "build_database"):
        count = min(model.config.database_examples, len(dataset))
        picks = torch.linspace(0, len(dataset) - 1, count).round().long().unique().tolist()
        model.build_database(dataset[i] for i in picks)
    elif hasattr(model, "set_input_stats"):
        mixes = torch.stack([dataset[i][0] for i in range(min(examples, len(dataset)))]).to(device)
        model.set_input_stats(model.features(model.stft(mixes.reshape(-1, mixes.shape[-1]))))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def train(data: TrackSource | str | Path, output_dir: str | Path, config: TrainConfig | None = None,
          model_config: dict | None = None, *, resume: bool = True, progress: bool = True,
          stop_after_steps: int | None = None, device: str | torch.device | None = None,
          on_epoch: Callable[[dict], None] | None = None, init: str | Path | None = None) -> TrainResult:
    """Train a separation model; resume from ``output_dir/last.pt`` when it exists.

    Args:
        data: a :class:`TrackSource`, ``"synthetic"``, or the path of a folder-layout dataset;
            for ``synthgen``, the folder written by :func:`synthgen_lib.encode.encode`.
        output_dir: where ``last.pt``, ``best.pt`` and ``metrics.jsonl`` go.
        config: training settings (``config.model`` picks the family).
        model_config: overrides of the model family's config (e.g. ``{"hidden_size": 128}``).
        resume: continue from ``last.pt`` if present (otherwise start over, keeping nothing).
        progress: show progress bars.
        stop_after_steps: stop (after saving ``last.pt``) once this global step is reached —
            a deliberate interruption, used by tests and to split long runs.
        device: ``cuda``/``cpu``; default CUDA when available.
        on_epoch: called with each epoch's metrics (e.g. a notebook's live loss plot).
        init: start from this checkpoint's model (bundled name or path) with its config, where
            ``model_config`` may only change settings that keep the weights' shapes (dropout,
            loss); SynthGen's tokens must be encoded with the checkpoint's codec settings, and
            SynthMatch keeps the database of the data it was first trained on. Used when the
            run starts; a resumed run continues from ``last.pt``.
    """
    cfg = config or TrainConfig()
    out, last_path = Path(output_dir), Path(output_dir) / "last.pt"
    rank, world = _dist()
    dev = default_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    overrides = dict(model_config or {})  # what the caller set; model_config becomes the run's whole config
    check_model_settings(cfg.model, overrides, "--model-config")  # before any data is read
    if cfg.queries > 0 or cfg.query_only:
        overrides = _with_queries(cfg, overrides, init)
    tokens = trains_on_tokens(cfg.model)
    if not tokens and "sample_rate" in overrides:  # the audio is read at the model's rate
        cfg = dataclasses.replace(cfg, sample_rate=int(overrides["sample_rate"]))
    if tokens:
        train_set, valid_set, valid_tracks, model_config = _codes_data(data, cfg, overrides)
    else:
        train_set, valid_set, valid_tracks = _audio_data(data, cfg)
        model_config = {**overrides, "sample_rate": cfg.sample_rate}
    step_size = cfg.batch_size * cfg.accumulate
    steps_per_epoch = cfg.steps_per_epoch or max(1, len(train_set) // (step_size * world))
    torch.manual_seed(cfg.seed)

    run = _Run(cfg, out, rank, world, dev, steps_per_epoch, valid_tracks,
               start=None if init is None else _init_name(init))  # how checkpoints name the starting model
    payload = run.resumable(last_path) if resume and last_path.is_file() else None
    if payload:
        model = build_model(cfg.model, payload["config"], where=last_path)
    elif init is not None:
        model = _initial_model(init, cfg, overrides, model_config)
    else:
        model = build_model(cfg.model, model_config, where="--model-config")
    if tokens:
        _check_codec(model, data)
    if getattr(model.config, "queries", False):
        train_set.query_embedding = valid_set.query_embedding = model.config.query_embedding
    if cfg.query_only:
        _train_only_queries(model, cfg.query_layers)
    run.build(model.to(dev), steps_per_epoch * cfg.epochs)
    if payload:
        run.restore(payload)
    elif init is None:
        init_from_data(model, train_set, dev)
    run.meta = getattr(model, "training_meta", lambda data: {})(train_set)  # e.g. SynthGen's descriptions
    # An explicit generator keeps each DataLoader iterator from drawing its base seed from the
    # global RNG, which would shift dropout masks after a resume.
    loader_args = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                       pin_memory=dev.type == "cuda", persistent_workers=False,
                       generator=torch.Generator().manual_seed(cfg.seed))
    valid_loader = torch.utils.data.DataLoader(valid_set, shuffle=False, **loader_args)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _trim_metrics(out / "metrics.jsonl", run.step, run.epoch)
        for stale in [*out.glob(".last.pt.*"), *out.glob(".best.pt.*")]:  # left by a killed save
            stale.unlink(missing_ok=True)
    model.train()
    while run.epoch < cfg.epochs:
        if run.train_epoch(train_set, loader_args, progress, stop_after_steps):
            break  # stopped on purpose after stop_after_steps (last.pt saved)
        run.end_epoch(model, valid_loader, on_epoch, progress)
    return TrainResult(out, run.step, run.epoch, run.best, run.history)


def _with_queries(cfg: TrainConfig, overrides: dict, init: str | Path | None) -> dict:
    """The model settings of a run with text queries: query layers on, embedded as the ``init``
    checkpoint's were (or by the best embedder installed); refused for families without them."""
    if "queries" not in config_fields(cfg.model):
        raise SynthGenError(f"the {cfg.model} family takes no text queries — train lstm or encoder with --queries")
    if cfg.query_only and init is None:
        raise SynthGenError("--query-only trains the query layers of a trained model: give it --init")
    start = load_checkpoint(init)["config"] if init is not None else {}
    embedding = start.get("query_embedding") if start.get("queries") else None
    return {"queries": True, "query_embedding": embedding or default_embedding(), **overrides}


QUERY_LAYERS = {"all": "query_", "gate": "query_gate"}
"""What ``query_layers`` may name, and the prefix of the layers each trains."""


def _train_only_queries(model: nn.Module, layers: str = "all") -> None:
    """Freeze everything but ``model``'s query layers (those ``layers`` names, see
    :data:`QUERY_LAYERS`), and keep the frozen layers in eval mode (batch norm statistics and
    dropout as at inference), so the model without a query stays exactly what it was."""
    if layers not in QUERY_LAYERS:
        raise ValueError(f"query_layers must be one of {', '.join(QUERY_LAYERS)}, not {layers!r}")
    prefix = QUERY_LAYERS[layers]
    if not any(name.startswith(prefix) for name, _ in model.named_children()):
        raise SynthGenError(f"--query-layers {layers}: this model has no such layers — grow them with --model-config "
                            "(e.g. '{\"query_gate\": true}')")
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith(prefix)
    for name, child in model.named_children():
        if not name.startswith(prefix):
            child.eval()
            child.train = lambda mode=True, child=child: child  # model.train() must not switch it back


def trains_on_tokens(family: str) -> bool:
    """Whether a family trains on EnCodec tokens (a folder written by ``encode``), not audio."""
    return getattr(_family_class(family), "trains_on", "audio") == "tokens"


def _family_class(family: str) -> type:
    from .models import _family

    return _family(family)[0]


class _Run:
    """One training run's state and steps: resume checks, optimizer, epochs, checkpoints."""

    def __init__(self, cfg: TrainConfig, out: Path, rank: int, world: int, dev: torch.device,
                 steps_per_epoch: int, valid_tracks: list[str], start: str | None):
        self.cfg, self.out, self.rank, self.world, self.dev = cfg, out, rank, world, dev
        self.steps_per_epoch, self.valid_tracks, self.start = steps_per_epoch, valid_tracks, start
        self.last_path = out / "last.pt"
        self.step, self.epoch, self.best, self.running = 0, 0, float("inf"), 0.0
        self.history: list[dict] = []
        self.meta: dict = {}

    def resumable(self, last_path: Path) -> dict:
        """``last.pt``'s payload after checking that this run can continue it (same family,
        seed, batch geometry, dataset and starting model); refused in one line otherwise."""
        cfg, payload = self.cfg, load_checkpoint(last_path)
        saved = payload["train"].get("config", {})
        if payload["family"] != cfg.model:
            raise CheckpointError(f"{last_path}: holds a '{payload['family']}' run, not '{cfg.model}' — "
                                  "use another output folder")
        if saved and saved.get("seed") != cfg.seed:
            raise SynthGenError(f"{last_path}: was trained with seed {saved.get('seed')}, not {cfg.seed} — "
                                "resume with the same settings or use another output folder")
        now = (self.steps_per_epoch, self.world)
        geometry = (payload["train"].get("steps_per_epoch", now[0]), payload["train"].get("world", now[1]))
        if geometry != now:
            raise SynthGenError(f"{last_path}: was started with {geometry[0]} steps per epoch on {geometry[1]} "
                                f"process(es), now {now[0]} on {now[1]} — resume with the same batch size, "
                                "steps per epoch and process count, or use another output folder")
        if payload["train"].get("valid_tracks", self.valid_tracks) != self.valid_tracks:
            raise SynthGenError(f"{last_path}: the dataset changed since this run started (its validation "
                                "tracks differ) — restore the dataset or start a new run in another folder")
        saved_start = payload["meta"].get("init_from")
        if self.start is not None and saved_start != self.start:
            raise SynthGenError(f"{last_path}: this run started from {saved_start or 'scratch'}, not {self.start} — "
                                "resume without changing it or use another output folder")
        self.start = saved_start  # kept in the checkpoints a resumed run writes
        return payload

    def build(self, model: nn.Module, total_steps: int) -> None:
        """Optimizer, schedule, mixed precision and the (distributed) loss of ``model``."""
        cfg = self.cfg
        self.model = model
        self.opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg, total_steps))
        self.use_amp = cfg.amp and self.dev.type == "cuda"
        self.amp_dtype = amp_dtype(self.dev) if self.use_amp else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.loss_fn: nn.Module = _LossOf(model)
        if self.world > 1:  # each family says what DDP must know about it (see the families' ddp_* attributes)
            self.loss_fn = nn.parallel.DistributedDataParallel(
                self.loss_fn, find_unused_parameters=getattr(model, "ddp_unused_parameters", False),
                broadcast_buffers=getattr(model, "ddp_broadcast_buffers", True))

    def restore(self, payload: dict) -> None:
        """Weights, optimizer, schedule, counters and random state from ``last.pt``."""
        self.model.load_state_dict(payload["model"])
        st = payload["train"]
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"]) if st.get("scaler") else None
        self.step, self.epoch, self.best, self.history = st["step"], st["epoch"], st["best_valid_loss"], st["history"]
        self.running = st.get("running", 0.0) if self.step > self.epoch * self.steps_per_epoch else 0.0
        torch.set_rng_state(st["rng"]["torch"])
        if "cuda" in st["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["rng"]["cuda"])

    def save(self, path: Path, *, with_state: bool) -> None:
        """The model (and with ``with_state`` everything a resume needs), never a non-finite one."""
        model = self.model
        if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
            _diverged(self.out, self.step, "weights", self.cfg, self.last_path)  # never over a good model
        train_state = {"config": dataclasses.asdict(self.cfg), "step": self.step, "epoch": self.epoch,
                       "best_valid_loss": self.best, "history": self.history, "valid_tracks": self.valid_tracks,
                       "steps_per_epoch": self.steps_per_epoch, "world": self.world, "running": self.running}
        if with_state:
            train_state.update(optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
                               scaler=self.scaler.state_dict(), rng=_rng_state())
        meta = {"sample_rate": self.cfg.sample_rate, "trained_steps": self.step, **self.meta}
        if self.start is not None:
            meta["init_from"] = self.start
        save_checkpoint(path, model, meta=meta, train=train_state)

    def train_epoch(self, train_set, loader_args: dict, progress: bool, stop_after_steps: int | None) -> bool:
        """The rest of the current epoch (all of it, or what a resume left); True when it
        stopped at ``stop_after_steps``."""
        cfg, world, rank = self.cfg, self.world, self.rank
        step_size = cfg.batch_size * cfg.accumulate
        train_set.set_epoch(self.epoch)
        order = torch.randperm(len(train_set), generator=_seeded(cfg.seed, self.epoch, -1)).tolist()
        order = (order * math.ceil(self.steps_per_epoch * step_size * world / len(order)))
        batches = [order[(s * world + rank) * step_size:(s * world + rank + 1) * step_size]
                   for s in range(self.steps_per_epoch)]
        done = self.step - self.epoch * self.steps_per_epoch  # > 0 when resuming mid-epoch
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches[done:], **{
            k: v for k, v in loader_args.items() if k != "batch_size"})
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", initial=done, total=self.steps_per_epoch,
                   disable=not progress or rank != 0, leave=False)
        for batch in bar:
            loss_value = self._step(batch)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if rank == 0 and cfg.log_every and self.step % cfg.log_every == 0:
                _log(self.out, {"step": self.step, "epoch": self.epoch, "train_loss": loss_value,
                                "lr": self.sched.get_last_lr()[0]})
            if rank == 0 and cfg.save_every and self.step % cfg.save_every == 0:
                self.save(self.last_path, with_state=True)
            if stop_after_steps is not None and self.step >= stop_after_steps:
                if rank == 0:
                    self.save(self.last_path, with_state=True)
                return True
        return False

    def _step(self, batch) -> float:
        """One optimizer step over ``batch`` (in ``accumulate`` parts); returns its loss."""
        cfg, opt, scaler = self.cfg, self.opt, self.scaler
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        for micro in _split(_to(batch, self.dev), cfg.accumulate):
            with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
                part = self.loss_fn(*micro) * (len(micro[0]) / len(batch[0]))
            scaler.scale(part).backward()
            loss += part.detach()
        if cfg.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        self.sched.step()
        self.step += 1
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            _diverged(self.out, self.step, f"loss ({loss_value})", cfg, self.last_path)
        self.running += loss_value
        return loss_value

    def end_epoch(self, model: nn.Module, valid_loader, on_epoch, progress: bool) -> None:
        """Validate, log, keep the best model, save ``last.pt``."""
        self.epoch += 1
        if self.rank == 0:
            metrics = {"epoch": self.epoch, "step": self.step, "train_loss": self.running / self.steps_per_epoch,
                       **validate(model, valid_loader, self.dev), "lr": self.sched.get_last_lr()[0],
                       "time": time.time()}
            self.history.append(metrics)
            _log(self.out, metrics)
            if metrics["valid_loss"] < self.best:
                self.best = metrics["valid_loss"]
                self.save(self.out / "best.pt", with_state=False)
            self.running = 0.0
            self.save(self.last_path, with_state=True)
            if on_epoch is not None:
                on_epoch(metrics)
            if progress:
                score = f"  SI-SDR {metrics['valid_si_sdr']:.2f} dB" if "valid_si_sdr" in metrics else ""
                tqdm.write(f"epoch {self.epoch}: train {metrics['train_loss']:.4f}  valid "
                           f"{metrics['valid_loss']:.4f}{score}")
        if self.world > 1:
            torch.distributed.barrier()


class TrainingDiverged(SynthGenError):
    """The loss or the weights stopped being finite numbers."""


def _diverged(out: Path, step: int, what: str, cfg: TrainConfig, last_path: Path):
    kept = f"{last_path} keeps the last good state" if last_path.is_file() else "no checkpoint was written"
    raise TrainingDiverged(f"{out}: training diverged at step {step}: the {what} became non-finite — lower --lr "
                           f"(it is {cfg.lr:g}), keep --grad-clip on (it is {cfg.grad_clip:g}), or look for NaN "
                           f"samples in the data; {kept}")


class _LossOf(nn.Module):
    """``forward(mix, synth)`` is the model's loss, so DistributedDataParallel, which only
    synchronises gradients of what runs through ``forward``, can wrap the whole loss."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *batch) -> torch.Tensor:
        return self.model.loss(*batch)


def _initial_model(init: str | Path, cfg: TrainConfig, overrides: dict, run_config: dict) -> nn.Module:
    """A new run's model rebuilt from the checkpoint ``init`` (weights included): its own config
    with the caller's ``overrides`` (settings that keep the weights' shapes), refused when a
    setting the run's data fixes (``run_config``: the audio rate, or what SynthGen's tokens
    were encoded with) differs from the checkpoint's."""
    payload = load_checkpoint(init)
    where = resolve(init)
    if payload["family"] != cfg.model:
        raise CheckpointError(f"{where}: is a '{payload['family']}' checkpoint, not '{cfg.model}' — "
                              "pick the matching --model or another --init")
    bound = TOKEN_SETTINGS if trains_on_tokens(cfg.model) else ("sample_rate",)
    differ = [f"{k} {payload['config'].get(k)} (this run: {run_config[k]})" for k in bound
              if k in run_config and run_config[k] != payload["config"].get(k)]
    if differ:
        raise CheckpointError(f"{where}: was trained with {', '.join(differ)} — train on data made with the "
                              "checkpoint's settings, or start from scratch")
    known = config_fields(cfg.model)  # a setting since removed from the family is dropped, not refused
    config = {**{k: v for k, v in payload["config"].items() if k in known}, **overrides}
    return load_weights(build_model(cfg.model, config, where=f"--init {where} with --model-config"), payload, where,
                        "the model settings given (leave out those that change its size)")


def _init_name(init: str | Path) -> str:
    """How a run records its starting model: a bundled name as it is, a file by its absolute path."""
    return str(init) if str(init) in BUNDLED else str(Path(init).resolve())


def _audio_data(data: TrackSource | str | Path, cfg: TrainConfig) -> tuple[SegmentDataset, SegmentDataset, list[str]]:
    """Training crops and validation windows of a track source, split by track."""
    source = data if isinstance(data, TrackSource) else (
        open_source("synthetic", seed=cfg.seed) if str(data) == "synthetic" else open_source("folder", data))
    ws: WindowSet = make_windows(source.tracks(), cfg.window, cfg.hop, cfg.valid_fraction, cfg.seed)
    train_windows, valid_windows = ws.of("train"), ws.of("valid")[: cfg.max_valid_windows]
    if not train_windows or not valid_windows:
        raise SynthGenError(f"need training and validation tracks, got {ws.counts()} — add tracks or "
                            "change valid_fraction")
    return (SegmentDataset(source, train_windows, cfg, augment=cfg.augment),
            SegmentDataset(source, valid_windows, cfg, augment=False, segment=cfg.valid_segment or cfg.window),
            sorted({w.track for w in valid_windows}))


# SynthGen settings that its encoded tokens depend on: a run must use the encode's values
TOKEN_SETTINGS = ("base", "n_q", "card", "sample_rate", "seed", "use_chroma")


def _codes_data(data: str | Path, cfg: TrainConfig, overrides: dict | None):
    """SynthGen's encoded windows; its model config is the one the encode recorded (the
    codec must match), with ``overrides`` for the settings that do not change the tokens."""
    from .encode import Codes

    if isinstance(data, TrackSource) or str(data) == "synthetic":
        raise SynthGenError("synthgen trains on encoded tokens: run encode first and pass its folder")
    codes = Codes(data)
    train_set, valid_set = codes.dataset("train"), codes.dataset("valid", cfg.max_valid_windows)
    if not len(train_set) or not len(valid_set):
        raise SynthGenError(f"{data}: need training and validation windows, got {len(train_set)} and "
                            f"{len(valid_set)} — encode more tracks or change valid_fraction")
    fixed = set(TOKEN_SETTINGS) & set(overrides or {})
    changed = sorted(k for k in fixed if overrides[k] != codes.model_config.get(k))
    if changed:
        raise SynthGenError(f"{data}: was encoded with another {', '.join(changed)} — encode again with these settings")
    return train_set, valid_set, valid_set.tracks, {**codes.model_config, **(overrides or {})}


def _check_codec(model: nn.Module, data: str | Path) -> None:
    from .encode import Codes

    codes = Codes(data)
    codes.load_codec_into(model)
    if model.codec_fingerprint() != codes.settings["codec"]:
        raise SynthGenError(f"{data}: these tokens were made by another EnCodec than this model's — "
                            "encode the dataset again with this model")


def _log(out: Path, record: dict) -> None:
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _trim_metrics(path: Path, step: int, epoch: int) -> None:
    """On resume, drop metric lines written after the checkpoint (they will be written again):
    steps past its step, epoch summaries past its epoch, and a line torn by the interruption."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step and ("valid_loss" not in record or record.get("epoch", 0) <= epoch):
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
