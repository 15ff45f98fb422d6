"""Playback and plots, in one place: audio players, spectrograms, comparison rows, loss curves.

Used by the demo's HTML page and by the notebooks (where the same HTML renders inline).
Audio is a ``(channels, samples)`` tensor or array; a ``(batch, channels, samples)`` input
gives one player per item.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import torch

from .audio import mp3_bytes, wav_bytes


def _as_numpy(wav) -> np.ndarray:
    data = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    return data[None] if data.ndim == 1 else data


def audio_html(wav, sample_rate: int, label: str | None = None, src: str | None = None,
               compressed: bool = False) -> str:
    """An ``<audio controls>`` element; the audio is embedded (as 16-bit WAV, or with
    ``compressed`` as an MP3 preview about a tenth of the size) unless ``src`` (a URL or a path
    relative to the page) is given."""
    data = _as_numpy(wav)
    if data.ndim == 3:
        return "".join(audio_html(x, sample_rate, f"{label or ''} {i}", compressed=compressed)
                       for i, x in enumerate(data))
    if src is None:
        kind, encoded = ("mpeg", mp3_bytes(data, sample_rate)) if compressed else ("wav", wav_bytes(data, sample_rate))
        src = f"data:audio/{kind};base64," + base64.b64encode(encoded).decode("ascii")
    title = f"<div class='sg-label'>{html.escape(label)}</div>" if label else ""
    return (f"{title}<audio controls preload='auto' data-duration='{data.shape[-1] / sample_rate:.3f}' "
            f"src='{html.escape(src, quote=True)}'></audio>")


def spectrogram_png(wav, sample_rate: int, title: str = "", max_freq: float = 8000.0,
                    size: tuple[float, float] = (6.0, 2.2)) -> bytes:
    """A log-magnitude spectrogram (channels averaged) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = torch.from_numpy(_as_numpy(wav).mean(0))
    length = mono.shape[-1]
    mono = torch.nn.functional.pad(mono, (0, max(0, 2049 - length)))  # clips shorter than one frame
    spec = torch.stft(mono, 2048, 512, window=torch.hann_window(2048), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-6)
    fig, ax = plt.subplots(figsize=size, dpi=80)
    extent = (0, length / sample_rate, 0, sample_rate / 2)
    ax.imshow(db.numpy(), origin="lower", aspect="auto", extent=extent, vmin=float(db.max()) - 80,
              vmax=float(db.max()), cmap="magma")
    ax.set_ylim(0, min(max_freq, sample_rate / 2))
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes) -> str:
    return f"<img src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'/>"


def comparison_html(stems: dict[str, object], sample_rate: int, title: str = "",
                    scores: dict[str, float | str] | None = None, links: dict[str, str] | None = None,
                    compressed: bool = False, max_seconds: float | None = None) -> str:
    """One row per stem (e.g. mix / synth / residual / reference): label, player, spectrogram.

    ``scores`` are shown next to the matching rows: a number as SI-SDR (``{"synth": 12.3}``),
    a string as written (``{"synth": "log-mel distance 9.1 dB"}``); ``links`` maps stem names
    to audio files the players should load instead of embedding. ``compressed`` embeds MP3
    previews instead of WAV, and ``max_seconds`` keeps only the start of longer stems (the
    notebooks' outputs stay a few MB for a whole song; the saved stems are complete).
    """
    rows = []
    cut = None if max_seconds is None else int(max_seconds * sample_rate)
    for name, wav in stems.items():
        data = _as_numpy(wav)
        value = (scores or {}).get(name)
        score = "" if value is None else f" — {value}" if isinstance(value, str) else f" — SI-SDR {value:.1f} dB"
        if cut is not None and data.shape[-1] > cut:
            data, score = data[..., :cut], f"{score} (first {max_seconds:g} s)"
        player = audio_html(data, sample_rate, src=(links or {}).get(name), compressed=compressed)
        rows.append(f"<tr><td class='sg-name'>{html.escape(name)}{html.escape(score)}</td><td>{player}</td>"
                    f"<td>{_img(spectrogram_png(data, sample_rate))}</td></tr>")
    head = f"<h2>{html.escape(title)}</h2>" if title else ""
    return f"{head}<table class='sg-compare'>{''.join(rows)}</table>"


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table.sg-compare td { padding: 4px 12px; vertical-align: middle; }
td.sg-name { font-weight: 600; white-space: nowrap; }
pre { background: #f4f4f4; padding: 1em; }
"""


def html_page(title: str, body: str) -> str:
    """A standalone HTML page around ``body``."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def loss_curve_png(metrics_path: str | Path, size: tuple[float, float] = (6.0, 3.0)) -> bytes:
    """Train and validation loss against step, from a run's ``metrics.jsonl``, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["train_loss"]) for r in records if "valid_loss" not in r]
    valid = [(r["step"], r["valid_loss"]) for r in records if "valid_loss" in r]
    fig, ax = plt.subplots(figsize=size, dpi=80)
    if train:
        ax.plot(*zip(*train), label="train", alpha=0.6)
    if valid:
        ax.plot(*zip(*valid), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
