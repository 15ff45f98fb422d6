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


def torchrun(script: Path, processes: int = 2, timeout: int = 600):
    """Run ``script`` under ``torch.distributed.run`` with one thread per process."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(processes), str(script)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# SynthGen: one tiny offline model configuration and one encoded synthetic dataset per session.
TINY_SYNTHGEN = {"window": 4.0, "dim": 32, "num_heads": 2, "num_layers": 2, "n_q": 4, "card": 64}


def quiet_accompaniment():
    """10 synthetic tracks with the accompaniment 12 dB down, so that a tiny model trained for
    a minute has a mix worth listening to."""
    from synthgen_lib.data.synthetic import SyntheticSource

    class QuietAccompaniment(SyntheticSource):
        def _load(self, info, sample_rate, offset, duration):
            mix, synth = super()._load(info, sample_rate, offset, duration)
            return synth + 0.25 * (mix - synth), synth

    return QuietAccompaniment(num_tracks=10, seed=5, track_duration=12.0)


@pytest.fixture(scope="session")
def synthgen_codes(tmp_path_factory):
    """A synthetic dataset encoded by the tiny SynthGen model: ``(folder, EncodeReport)``."""
    from synthgen_lib.encode import encode

    folder = tmp_path_factory.mktemp("codes")
    source = quiet_accompaniment()
    report = encode(source, folder, dict(TINY_SYNTHGEN), hop=2.0, valid_fraction=0.2, seed=0, shard_size=16,
                    progress=False)
    return folder, report


def query_separator(family: str = "lstm", seed: int = 0):
    """A tiny separator with text queries (n-gram embedding) whose query layers hold random
    weights, so that a query changes its answer (trained ones start at zero)."""
    import torch

    from synthgen_lib.models import build_model

    torch.manual_seed(seed)
    settings = {"lstm": {"n_fft": 512, "hop_length": 128, "n_mels": 16, "hidden_size": 16, "num_layers": 1},
                "encoder": {"channels": 4, "depth": 2, "lstm_layers": 1}}[family]
    model = build_model(family, {**settings, "queries": True, "query_embedding": "ngram"})
    for name, param in model.named_parameters():
        if name.startswith("query_"):
            torch.nn.init.normal_(param, std=0.3)
    return model.eval()
