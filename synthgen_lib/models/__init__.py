"""The separation model families, their configs, and checkpoints that rebuild themselves.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — nothing that
needs unpickling code — so it is always read with ``torch.load(weights_only=True)``::

    {"format": "synthgen-checkpoint", "version": 1, "family": "lstm",
     "config": {...model config...}, "model": state_dict, "meta": {...}, "train": {...}}

:func:`load_model` accepts a path or the name of a bundled model (``synthgen models``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SynthGenError
from ..fileio import atomic_path
from .encoder import SynthEncoder, SynthEncoderConfig
from .lstm import SynthLSTM, SynthLSTMConfig
from .synthmatch import SynthMatch, SynthMatchConfig

FAMILIES: dict[str, tuple[type[nn.Module], type]] = {
    "lstm": (SynthLSTM, SynthLSTMConfig),
    "encoder": (SynthEncoder, SynthEncoderConfig),
    "synthmatch": (SynthMatch, SynthMatchConfig),
}
PRETRAINED_MUSICGEN = {  # SynthGen bases on the hub, and whether each reads the mix's chroma (melody conditioning)
    "facebook/musicgen-melody": {"chroma": True},
    "facebook/musicgen-small": {"chroma": False},
}
DEFAULT_MUSICGEN = "facebook/musicgen-melody"  # what generate uses when no model is named
NAMES = (*FAMILIES, "synthgen")  # synthgen imports audiocraft (slow): loaded on first use


def _family(name: str) -> tuple[type[nn.Module], type]:
    if name == "synthgen" and name not in FAMILIES:
        from .synthgen import SynthGen, SynthGenConfig

        FAMILIES[name] = (SynthGen, SynthGenConfig)
    return FAMILIES[name]


def family_class(name: str) -> type[nn.Module]:
    """The model class of family ``name`` (its ``task`` and ``options`` say what it does)."""
    if name not in NAMES:
        raise CheckpointError(f"unknown model family {name!r} (known: {', '.join(NAMES)})")
    return _family(name)[0]


# Settings added after a family's first checkpoints were written, with the value those older
# checkpoints were trained with: a checkpoint whose config lacks one loads (and resumes) as it
# was trained, not with today's default.
ADDED_SETTINGS = {"encoder": {"loss": "l1+stft"}}
FORMAT = "synthgen-checkpoint"
ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUNDLED = {
    "synthlstm-demo": ("lstm", "models/synthlstm-demo.pt",
                       "SynthLSTM trained on the synthetic generator; answers text queries (bundled demo)"),
    "synthencoder-demo": ("encoder", "models/synthencoder-demo.pt",
                          "SynthEncoder trained on the synthetic generator (bundled demo)"),
}


class CheckpointError(SynthGenError):
    """A checkpoint that is missing, corrupt, unsafe, or of another model family."""


# What a family does: every model class says it with ``task`` and lists the inference options
# its forward takes in ``options`` (name -> help), so callers ask the model, never its name.
TASKS = {
    "separator": "isolates the synth stem of a mix",
    "matcher": "rebuilds a synth track from its database of training synth segments",
    "generator": "writes a new synth stem for a mix",
}
USE_INSTEAD = {
    "separator": "use 'synthgen separate' with it",
    "matcher": "use 'synthgen separate' with it (its synth.wav is the rebuilt track)",
    "generator": "use 'synthgen generate' with it",
}


def family_title(model: nn.Module) -> str:
    """The family's name as users know it (``SynthLSTM``, ``SynthEncoder``...)."""
    return type(_unwrap(model)).__name__


def require_task(model: nn.Module, tasks: tuple[str, ...], doing: str, where: str | Path | None = None) -> nn.Module:
    """``model`` if its family's task is one of ``tasks``; else a one-line :class:`CheckpointError`
    naming the family, what it is, and the command to use instead."""
    task = getattr(_unwrap(model), "task", None)
    if task is None or task in tasks:  # a plain module of the caller's own is taken as it is
        return model
    prefix = f"{where}: " if where is not None else ""
    raise CheckpointError(f"{prefix}{family_title(model)} {TASKS[task]} and cannot {doing} — {USE_INSTEAD[task]}")


def model_options(model: nn.Module, options: dict[str, Any]) -> dict[str, Any]:
    """The inference options of ``options`` that ``model``'s family takes.

    An option left off (``None`` or ``False``) that the family does not have is dropped; one
    that is set is refused in one line that names the family and the options it has.
    """
    known = getattr(_unwrap(model), "options", None)
    if known is None:  # a plain module of the caller's own: its forward decides
        return dict(options)
    kept = {}
    for name, value in options.items():
        if name in known:
            kept[name] = value
        elif name == "query" and value:  # an option some models of a family have: said in the user's words
            raise CheckpointError(f"this {family_title(model)} was trained without text queries — leave out the "
                                  "query (or train one with --queries)")
        elif value is not None and value is not False:
            has = f"its options are {', '.join(known)}" if known else "it takes no options"
            raise CheckpointError(f"{family_title(model)} has no '{name}' option ({has}) — leave it out")
    return kept


def config_fields(family: str) -> set[str]:
    """The settings of a family's config dataclass."""
    return {f.name for f in dataclasses.fields(_family(family)[1])}


def check_model_settings(family: str, settings: Any, where: str | Path | None = None) -> None:
    """Refuse in one line settings of ``family`` with a wrong type or out of range (the size of
    the model is checked when it is built, by :func:`build_model`)."""
    from .settings import check_settings

    if family not in NAMES:
        raise CheckpointError(f"unknown model family {family!r}: choose one of {', '.join(NAMES)}")
    check_settings(_family(family)[1], settings, None, where)


def build_model(family: str, config: dict | Any | None = None, strict: bool = True,
                where: str | Path | None = None) -> nn.Module:
    """A new model of ``family`` (``lstm``, ``encoder``, ``synthmatch`` or ``synthgen``) from a config object or dict.

    Every setting's type and range, and the size of the weights, are checked before anything is
    allocated (:func:`~synthgen_lib.models.settings.check_settings`).

    Args:
        strict: ``False`` ignores settings the config does not know (a checkpoint written by a
            version that had a setting since removed still loads); user-given settings are strict.
        where: the file or flag the settings came from, named in error messages.
    """
    from .settings import check_settings

    prefix = f"{where}: " if where is not None else ""
    if family not in NAMES:
        raise CheckpointError(f"{prefix}unknown model family {family!r}: choose one of {', '.join(NAMES)}")
    cls, config_cls = _family(family)
    if config is None or isinstance(config, config_cls):
        config = dataclasses.asdict(config or config_cls())
    check_settings(config_cls, config, None if family == "synthgen" else cls, where)  # synthgen may need the hub
    known = config_fields(family)
    unknown = sorted(set(config) - known)
    if unknown and strict:
        raise CheckpointError(f"{prefix}unknown {family} setting(s) {', '.join(unknown)}: the settings are "
                              f"{', '.join(sorted(known))}")
    try:
        return cls(config_cls(**{k: v for k, v in config.items() if k in known}))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{prefix}invalid {family} settings ({exc})") from None


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None,
                    train: dict | None = None, half: bool = False) -> Path:
    """Write ``model`` with its config (and optional training state) atomically.

    Args:
        half: store float weights as float16 (half the size; for bundled demo models).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in _unwrap(model).state_dict().items()}
    payload = {"format": FORMAT, "version": 1, "family": _unwrap(model).family,
               "config": dataclasses.asdict(_unwrap(model).config), "model": state,
               "meta": meta or {}, "train": train or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def resolve(name_or_path: str | Path) -> Path:
    """The file behind a bundled model name or a path."""
    if str(name_or_path) in BUNDLED:
        return ASSETS / BUNDLED[str(name_or_path)][1]
    return Path(name_or_path)


def _check_header(path: Path) -> None:
    """Refuse a file that cannot be a torch checkpoint by its first bytes, saying what it is:
    torch writes a zip (``PK``) or, in old versions, a pickle (``0x80``). Anything else (a web
    page saved in place of a download, zeros, random bytes) is not a checkpoint at all, which
    torch's own error would call unsafe."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        what = "a web page (HTML), not a checkpoint — the download probably failed or needs a sign-in; download it again"
    elif not head:
        what = "empty (0 bytes) — copy or download it again"
    elif not head.strip(b"\0"):
        what = "all zero bytes, not a checkpoint — the copy was cut off; copy or download it again"
    else:
        what = "not a checkpoint (it is not a torch file) — check the path, or download it again"
    raise CheckpointError(f"{path}: {what}")


def load_checkpoint(name_or_path: str | Path) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check it is one of ours.

    Raises:
        CheckpointError: missing, truncated/corrupt, holding code objects, or not a SynthGen
            checkpoint. Never retried with unrestricted unpickling.
    """
    path = resolve(name_or_path)
    if not path.is_file():
        hint = ("the bundled models are listed by 'synthgen models'" if str(name_or_path) in BUNDLED
                or "/" not in str(name_or_path) else "check the path (is Google Drive mounted?)")
        raise CheckpointError(f"{path}: no such checkpoint — {hint}")
    _check_header(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, or a pickle asking for code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"{path}: refused — it contains Python objects that could run code "
                                  "when loaded; only load checkpoints from people you trust, "
                                  "re-saved with synthgen") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({first[:160]}) — the file may be "
                              "truncated or corrupt; download or copy it again") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a SynthGen checkpoint (no '{FORMAT}' header)")
    family, config, weights = payload.get("family"), payload.get("config"), payload.get("model")
    if family not in NAMES:
        raise CheckpointError(f"{path}: names an unknown model family {family!r} (known: {', '.join(NAMES)}) — "
                              "the file was edited or written by another program")
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"{path}: its model settings are a {type(config).__name__}, not a table of "
                              "name: value — the file was edited or written by another program")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: holds no model weights ('model' is {type(weights).__name__}) — "
                              "the file was edited or written by another program")
    payload["config"] = {**ADDED_SETTINGS.get(family, {}), **(config or {})}
    return payload


def load_model(name_or_path: str | Path, family: str | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint (path or bundled name), in eval mode on ``device``.

    Args:
        family: if given, refuse a checkpoint of another family with a clear message.
    """
    payload = load_checkpoint(name_or_path)
    got = payload.get("family")
    if family is not None and got != family:
        raise CheckpointError(f"{resolve(name_or_path)}: this is a '{got}' checkpoint, not '{family}' — "
                              "pick the matching --model")
    model = build_model(got, payload.get("config") or {}, strict=False, where=resolve(name_or_path))
    return load_weights(model, payload, resolve(name_or_path), "its config").to(device).eval()


def load_weights(model: nn.Module, payload: dict, where: str | Path, settings: str = "its config") -> nn.Module:
    """Put a checkpoint's weights (float16 ones as float32) into ``model``; weights that do not
    fit raise a one-line :class:`CheckpointError` naming ``where`` and ``settings``."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{where}: holds NaN or infinite weights ({broken[0]}"
                              f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}) — the training that "
                              "wrote it diverged; use an earlier checkpoint")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # torch's first line is a header; the next one names the key and shapes
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
        raise CheckpointError(f"{where}: weights do not fit {settings} ({detail[:200]})") from None
    return model


def export_model(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Copy a checkpoint's model (config + weights, no optimizer/RNG state) to ``dst``.

    ``half`` stores the weights as float16: bundled demo models stay a few MB. A SynthGen
    checkpoint becomes a folder in audiocraft's export format (see ``synthgen_io.export``).
    """
    payload = load_checkpoint(src)
    model = load_model(src)
    if payload.get("family") == "synthgen":
        from .synthgen_io import export

        if Path(dst).suffix:
            raise CheckpointError(f"{dst}: SynthGen exports to a folder in audiocraft's format — give a folder "
                                  "path, not a file name")
        return export(model, dst, half=half)
    keep = {k: payload["train"][k] for k in ("config", "step", "epoch", "best_valid_loss") if k in payload["train"]}
    meta = {**payload.get("meta", {}), "exported_from": Path(src).name}
    start = meta.get("init_from")
    if isinstance(start, str) and Path(start).is_absolute():  # a file of the machine that trained it: keep
        meta["init_from"] = "/".join(Path(start).parts[-2:])  # its run folder and name, not the whole path
    return save_checkpoint(dst, model, meta=meta, train=keep, half=half)


def list_models() -> list[tuple[str, str, str, bool]]:
    """Bundled models as ``(name, family, description, present)``."""
    return [(name, fam, text, (ASSETS / rel).is_file()) for name, (fam, rel, text) in BUNDLED.items()]


__all__ = ["BUNDLED", "CheckpointError", "DEFAULT_MUSICGEN", "FAMILIES", "family_class", "PRETRAINED_MUSICGEN", "SynthEncoder", "SynthEncoderConfig", "SynthLSTM",
           "SynthLSTMConfig", "SynthMatch", "SynthMatchConfig", "TASKS", "build_model", "check_model_settings", "config_fields", "export_model",
           "family_title", "list_models", "load_checkpoint", "load_model", "load_weights", "model_options", "require_task",
           "resolve", "save_checkpoint"]
