"""Shared fixtures: every test writes its own small audio files; nothing touches the network."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# Belt and braces: any hub client that tried to reach the network would fail fast instead.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def tone(seconds: float, sr: int, channels: int = 1, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A sine ``(channels, samples)``; channel c is at ``freq * (c + 1)`` so channels differ."""
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([amp * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def write(path: Path, wav: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    """Write ``(channels, samples)`` with soundfile directly (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.T, sr, subtype=subtype)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
