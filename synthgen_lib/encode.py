"""``encode``: a dataset's windows → EnCodec tokens of synth and mix (+ the mix's chroma), for
SynthGen training.

Drive is slow with thousands of small files, so windows go into a few large shards::

    DIR/manifest.json     settings, the codec's fingerprint, the finished shards
    DIR/codec.pt          the EnCodec weights, when the codec is not a hub model (tiny)
    DIR/shard-00000.pt    {"synth": int16 (N, n_q, frames), "mix": int16 (N, n_q, frames),
                           "chroma": float16 (N, chroma_frames, 12) or (N, 0, 12),
                           "description": [str], "track": [str], "start": float32 (N,), "split": [str]}

Shards and the manifest are written atomically; the manifest lists a shard only once its
file is complete, so an interrupted encode resumes after its last finished shard and never
reads a half-written one. Shard files hold plain tensors and strings (``weights_only=True``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .data import TrackSource, Window, make_windows, open_source
from .device import default_device
from .download import confined
from .errors import DatasetError, SynthGenError
from .fileio import atomic_path, write_text_atomic

FORMAT = "synthgen-codes"
MANIFEST = "manifest.json"
CODEC = "codec.pt"
SHARD_KEYS = ("synth", "mix", "chroma", "description", "track", "start", "split")  # one entry per window


@dataclass
class EncodeReport:
    """What an encode run did."""

    output_dir: Path
    windows: dict[str, int]
    shards_written: int
    shards_skipped: int
    audio_seconds: float
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def realtime(self) -> float:
        """Audio seconds (mix + synth) encoded per wall-clock second in this run."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("inf")

    def format(self) -> str:
        lines = [f"encoded {sum(self.windows.values())} windows ({', '.join(f'{k} {v}' for k, v in self.windows.items())}) "
                 f"into {self.output_dir}",
                 f"shards: {self.shards_written} written, {self.shards_skipped} already done",
                 f"throughput: {self.audio_seconds:.0f} s of audio in {self.seconds:.1f} s "
                 f"({self.realtime:.1f}x realtime)"]
        lines += [f"skipped: {p}" for p in self.problems]
        return "\n".join(lines)


def _resolve_model(model: Any, device: torch.device):
    from .models.synthgen import SynthGen, SynthGenConfig

    if isinstance(model, SynthGen):
        return model.to(device).eval()
    if model is None or isinstance(model, (dict, str)):
        cfg = model if isinstance(model, dict) else {"base": model or "tiny"}
        return SynthGen(SynthGenConfig(**cfg), device=str(device)).to(device).eval()
    if isinstance(model, SynthGenConfig):
        return SynthGen(model, device=str(device)).to(device).eval()
    raise SynthGenError(f"encode needs a SynthGen model, config or base name, not {type(model).__name__}")


def _window_key(windows: list[Window]) -> str:
    h = hashlib.sha256()
    for w in windows:
        h.update(f"{w.track}|{w.start:.3f}|{w.length:.3f}|{w.split}\n".encode())
    return h.hexdigest()[:16]


def encode(source: TrackSource | str | Path = "synthetic", output_dir: str | Path = "codes", model: Any = None, *,
           window: float | None = None, hop: float = 5.0, valid_fraction: float = 0.1, seed: int = 0,
           shard_size: int = 256, batch_size: int = 8, device: str | torch.device | None = None,
           progress: bool = True, stop_after_shards: int | None = None) -> EncodeReport:
    """Encode every window of ``source`` into ``output_dir``; resume a previous run there.

    Args:
        source: a :class:`TrackSource`, ``"synthetic"``, or the path of a folder-layout dataset.
        output_dir: where the shards and ``manifest.json`` go.
        model: a :class:`~synthgen_lib.models.synthgen.SynthGen`, its config (object or dict),
            or a base name (default ``tiny``); its EnCodec (and chroma) make the features, and
            its config is recorded for training.
        window, hop: window length and hop in seconds (window default: the model's).
        valid_fraction, seed: the held-out split of the tracks (see ``make_windows``).
        shard_size: windows per shard file.
        batch_size: windows encoded per forward pass.
        device: default CUDA when available.
        progress: show a progress bar.
        stop_after_shards: stop after writing this many new shards (a deliberate interruption).
    Raises:
        SynthGenError: ``output_dir`` holds an encode made with other settings or another codec.
    """
    dev = default_device(device)
    if not isinstance(source, TrackSource):
        source = open_source("synthetic", seed=seed) if str(source) == "synthetic" else open_source("folder", source)
    net = _resolve_model(model, dev)
    if net.config.demucs_chroma:
        raise SynthGenError("demucs_chroma is for generating with the pretrained melody model; encode caches the "
                            "mix chroma instead — encode without it")
    window = window or net.config.window
    ws = make_windows(source.tracks(), window, hop, valid_fraction, seed)
    windows = ws.windows
    if not windows:
        raise DatasetError(f"no windows to encode: {ws.counts()}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"window": window, "hop": hop, "valid_fraction": valid_fraction, "seed": seed, "shard_size": shard_size,
                "windows": _window_key(windows), "codec": net.codec_fingerprint(),
                "sample_rate": net.sample_rate, "frame_rate": net.frame_rate, "n_q": net.n_q, "card": net.card}
    manifest = {"format": FORMAT, "version": 1, "settings": settings, "model": dataclasses.asdict(net.config),
                "counts": {s: len(ws.of(s)) for s in ("train", "valid")}, "shards": []}
    path = out / MANIFEST
    if path.is_file():
        old = _read_manifest(path)
        if old.get("settings") != settings:
            changed = sorted(k for k in settings if old.get("settings", {}).get(k) != settings[k])
            raise SynthGenError(f"{path}: this folder holds an encode made with other settings ({', '.join(changed)}) "
                                "— use another output folder, or the same settings to resume")
        manifest["shards"] = [s for s in old["shards"] if (out / s["file"]).is_file()]
    if "pretrained" not in (net.codec_cfg or {}) and not (out / CODEC).is_file():
        # a codec not on the hub (tiny, or a local export) travels with its tokens: built in
        # another process (other thread count) its k-means codebooks could differ
        with atomic_path(out / CODEC) as tmp:
            torch.save({k: v.cpu() for k, v in net.codec.state_dict().items()}, tmp)
    done = {s["file"] for s in manifest["shards"]}
    for stale in out.glob(".shard-*"):  # temp files of a killed run
        stale.unlink(missing_ok=True)
    groups = [windows[i:i + shard_size] for i in range(0, len(windows), shard_size)]
    written = skipped = 0
    audio_seconds, started = 0.0, time.perf_counter()
    bar = tqdm(total=len(windows), desc="encoding", unit="window", disable=not progress)
    for index, group in enumerate(groups):
        name = f"shard-{index:05d}.pt"
        if name in done:
            skipped += 1
            bar.update(len(group))
            continue
        if stop_after_shards is not None and written >= stop_after_shards:
            break
        shard = _encode_group(source, group, net, window, batch_size, bar)
        with atomic_path(out / name) as tmp:
            torch.save(shard, tmp)
        manifest["shards"].append({"file": name, "windows": len(group),
                                   "splits": {s: shard["split"].count(s) for s in ("train", "valid")}})
        write_text_atomic(path, json.dumps(manifest, indent=1))
        written += 1
        audio_seconds += 2 * window * len(group)
    bar.close()
    write_text_atomic(path, json.dumps(manifest, indent=1))
    return EncodeReport(out, manifest["counts"], written, skipped, audio_seconds, time.perf_counter() - started,
                        source.problems.lines() if hasattr(source, "problems") else [])


@torch.no_grad()
def _encode_group(source: TrackSource, group: list[Window], net, window: float, batch_size: int, bar) -> dict:
    synth, mix, chroma = [], [], []
    for i in range(0, len(group), batch_size):
        batch = group[i:i + batch_size]
        audio = [source.load(w.track, net.sample_rate, 1, w.start, window) for w in batch]
        mixes = torch.stack([a.mix for a in audio])
        synths = torch.stack([a.synth for a in audio])
        both = net.encode_audio(torch.cat([synths, mixes])).cpu().to(torch.int16)
        synth.append(both[: len(batch)])
        mix.append(both[len(batch):])
        c = net.mix_chroma(mixes)
        chroma.append(c.cpu().half() if c is not None else torch.zeros(len(batch), 0, 12, dtype=torch.float16))
        bar.update(len(batch))
    return {"synth": torch.cat(synth), "mix": torch.cat(mix), "chroma": torch.cat(chroma),
            "description": [source.info(w.track).description for w in group], "track": [w.track for w in group],
            "start": torch.tensor([w.start for w in group], dtype=torch.float32), "split": [w.split for w in group]}


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc}) — encode the dataset again into a new folder") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a SynthGen codes manifest (run 'synthgen encode' to make one)")
    for key, kind in (("settings", dict), ("model", dict), ("counts", dict), ("shards", list)):
        if not isinstance(manifest.get(key), kind):
            raise DatasetError(f"{path}: the manifest has no '{key}' {kind.__name__} (written by another version, or "
                               "edited by hand) — encode the dataset again into a new folder")
    for entry in manifest["shards"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("windows"), int)):
            raise DatasetError(f"{path}: a shard entry lacks its 'file' or 'windows' ({str(entry)[:80]}) — encode "
                               "the dataset again into a new folder")
    return manifest


class Codes:
    """An encoded dataset folder: its manifest and its windows, loaded shard by shard."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{self.folder}: no {MANIFEST} — encode the dataset first ('synthgen encode')")
        self.manifest = _read_manifest(path)
        self.settings: dict = self.manifest["settings"]
        self.model_config: dict = self.manifest["model"]
        self._items: list[dict] | None = None

    def load_codec_into(self, model) -> None:
        """Give ``model`` the codec these tokens were made with, when it travels with them."""
        path = self.folder / CODEC
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise DatasetError(f"{path}: unreadable codec ({str(exc).splitlines()[0][:120]}) — encode the "
                                   "dataset again into a new folder") from None
            model.codec.load_state_dict(state)

    @property
    def complete(self) -> bool:
        return sum(s["windows"] for s in self.manifest["shards"]) == sum(self.manifest["counts"].values())

    def _load(self) -> list[dict]:
        if self._items is None:
            self._items = []
            for entry in self.manifest["shards"]:
                path = confined(self.folder, entry["file"])
                try:
                    shard = torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:
                    raise DatasetError(f"{path}: unreadable shard ({str(exc).splitlines()[0][:120]}) — "
                                       "delete it and run encode again to redo it") from None
                missing = [k for k in SHARD_KEYS if not isinstance(shard, dict) or k not in shard]
                if missing or len({len(shard[k]) for k in SHARD_KEYS}) != 1:
                    what = f"no {', '.join(missing)}" if missing else "its fields differ in length"
                    raise DatasetError(f"{path}: not a complete shard ({what}) — delete it and run encode again "
                                       "to redo it")
                for i in range(len(shard["track"])):
                    self._items.append({k: shard[k][i] for k in shard})
        return self._items

    def dataset(self, split: str, limit: int | None = None) -> "CodesDataset":
        return CodesDataset([x for x in self._load() if x["split"] == split][:limit])


class CodesDataset(torch.utils.data.Dataset):
    """Encoded windows as ``(synth_codes, mix_codes, chroma, description)`` training examples."""

    def __init__(self, items: list[dict]):
        self.items = items

    @property
    def tracks(self) -> list[str]:
        return sorted({x["track"] for x in self.items})

    def set_epoch(self, epoch: int) -> None:
        """Encoded windows are fixed: every epoch sees the same examples (order is shuffled)."""

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
        x = self.items[i]
        return x["synth"].long(), x["mix"].long(), x["chroma"].float(), x["description"]
