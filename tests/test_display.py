from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import soundfile as sf

from synthgen_lib.display import audio_html, comparison_html, loss_curve_png, spectrogram_png


def test_embedded_player_decodes_to_the_same_audio():
    x = (np.sin(np.linspace(0, 200, 8000)) * 0.5).astype(np.float32)[None].repeat(2, 0)
    html = audio_html(x, 8000, "synth")
    assert "data-duration='1.000'" in html and ">synth<" in html
    data = re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1)
    decoded, rate = sf.read(io.BytesIO(base64.b64decode(data)), always_2d=True)
    assert rate == 8000 and decoded.shape == (8000, 2) and np.abs(decoded.T - x).max() < 1e-4


def test_batched_input_gives_one_player_each_and_links_are_used():
    assert audio_html(np.zeros((3, 1, 800), np.float32), 8000).count("<audio") == 3
    html = comparison_html({"mix": np.zeros((1, 800)), "synth": np.zeros((1, 800))}, 8000,
                           scores={"synth": 4.25}, links={"mix": "a/mix.wav"})
    assert "src='a/mix.wav'" in html and html.count("base64,") == 3  # synth audio + two spectrograms
    assert "SI-SDR 4.2 dB" in html


def test_plots_are_png(tmp_path):
    assert spectrogram_png(np.random.default_rng(0).normal(size=(2, 16000)), 16000)[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in [{"step": 1, "train_loss": 1.0},
                                                           {"step": 2, "train_loss": 0.5, "valid_loss": 0.7}]))
    assert loss_curve_png(metrics)[:4] == b"\x89PNG"
