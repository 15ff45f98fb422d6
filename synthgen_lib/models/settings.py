"""One check of a model config, before anything is allocated.

Every family's config dataclass declares ``RANGES`` (setting -> (lowest, highest) allowed, for
numbers) and the type of each setting is its annotation. :func:`check_settings` refuses, in one
line naming the file (or flag) and the setting, a value of the wrong type, out of its range, or
a model whose weights would take more memory than :data:`MAX_WEIGHT_BYTES` (counted on PyTorch's
``meta`` device, where building a model allocates nothing). ``build_model`` calls it, so it
guards checkpoints loaded by path, ``train --model-config``, ``--init`` and the library alike.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import torch

MAX_WEIGHT_BYTES = 8 * 2 ** 30
"""Largest model (float32 weights) a config may describe: 8 GiB, above any MusicGen size."""

_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _problem(name: str, value: Any, kind: str, bounds: tuple | None) -> str | None:
    """What is wrong with one setting, or ``None``."""
    allowed = _TYPES.get(kind)
    if allowed is None:  # lists, optional values: the family's own constructor checks them
        return None
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, allowed):
        return f"{name} must be {'a number' if kind == 'float' else 'an integer' if kind == 'int' else 'a ' + kind}, " \
               f"got {value!r}"
    if kind in ("int", "float"):
        if not math.isfinite(value):
            return f"{name} must be a finite number, got {value!r}"
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return f"{name}={value!r} is out of range ({bounds[0]:g} to {bounds[1]:g})"
    return None


def check_settings(config_cls: type, settings: Mapping[str, Any], model_cls: type | None = None,
                   where: str | Path | None = None) -> None:
    """Refuse ``settings`` (a dict of ``config_cls``'s fields) in one line if a value has the
    wrong type or range, or the model they describe would not fit :data:`MAX_WEIGHT_BYTES`.

    Args:
        model_cls: when given, the model is built on the ``meta`` device to count its weights.
        where: the file or flag the settings came from, named in the message.
    Raises:
        CheckpointError: the first problem found.
    """
    from . import CheckpointError

    prefix = f"{where}: " if where is not None else ""
    if not isinstance(settings, Mapping):
        raise CheckpointError(f"{prefix}the model settings must be a table of name: value, got "
                              f"{type(settings).__name__}")
    ranges = getattr(config_cls, "RANGES", {})
    for field in dataclasses.fields(config_cls):
        if field.name in settings:
            problem = _problem(field.name, settings[field.name], str(field.type), ranges.get(field.name))
            if problem:
                raise CheckpointError(f"{prefix}invalid model setting: {problem}")
    if model_cls is None:
        return
    known = {f.name for f in dataclasses.fields(config_cls)}
    try:
        with torch.device("meta"):
            model = model_cls(config_cls(**{k: v for k, v in settings.items() if k in known}))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{prefix}invalid model settings ({str(exc).splitlines()[0][:200]})") from None
    size = sum(p.numel() * 4 for p in model.parameters())
    if size > MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{prefix}these model settings describe {size / 2 ** 30:.1f} GiB of weights, more than "
                              f"the {MAX_WEIGHT_BYTES / 2 ** 30:.0f} GiB limit — use smaller sizes")
