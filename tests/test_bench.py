"""CI smoke: each benchmark runs in --quick mode and prints positive, parseable figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in output.splitlines()
            if line.startswith("| ") and not line.startswith(("| model", "| family", "| track"))]


@pytest.mark.parametrize("module, numeric_columns", [("bench.separation", [2, 3, 4]), ("bench.training", [4, 5, 6]),
                                                    ("bench.synthetic", [2, 3, 4]), ("bench.panel", [2, 3, 4])])
def test_benchmark_quick_mode_prints_positive_figures(module, numeric_columns):
    out = subprocess.run([sys.executable, "-m", module, "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("machine: ")
    rows = _rows(out.stdout)
    assert rows
    for row in rows:
        for i in numeric_columns:
            assert re.fullmatch(r"\d+(\.\d+)?", row[i]) and float(row[i]) > 0, row


def test_synthgen_benchmark_quick_mode_prints_memory_and_throughput():
    out = subprocess.run([sys.executable, "-m", "bench.synthgen", "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [r for r in _rows(out.stdout) if r[0] != "measure"]
    memory = [r for r in rows if len(r) == 8]
    throughput = [r for r in rows if len(r) == 4]
    assert {r[0] for r in memory} == {"musicgen-small", "musicgen-melody"} and len(memory) == 16
    for row in memory:
        assert float(row[6]) > 0 and row[7] in ("yes", "no")
    # LoRA + checkpointing must use less than full fine-tuning without it, for both sizes
    for name in ("musicgen-small", "musicgen-melody"):
        gb = {(r[2].split()[0], r[4], r[5]): float(r[6]) for r in memory if r[0] == name}
        assert gb[("LoRA", "fp16 autocast", "yes")] < gb[("full", "fp32", "no")]
    assert len(throughput) == 2 and all(float(r[2]) > 0 for r in throughput)


def test_peer_comparison_quick_mode_trains_and_scores_all_four():
    out = subprocess.run([sys.executable, "-m", "bench.peers", "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r[0]: r for r in _rows(out.stdout)}
    assert set(rows) == {"SynthLSTM", "Open-Unmix", "SynthEncoder", "Demucs (v2 waveform)", "mix", "oracle", "hpss"}
    for name in ("SynthLSTM", "Open-Unmix", "SynthEncoder", "Demucs (v2 waveform)"):
        assert int(rows[name][2]) > 0 and int(rows[name][3]) > 0  # trained some steps, scored some windows
    medians = {name: float(row[4]) for name, row in rows.items()}
    assert medians["oracle"] > max(medians["mix"], medians["hpss"])  # the reference points are computed, and sane


def test_peer_comparison_over_seeds_pairs_each_of_ours_with_its_peer():
    out = subprocess.run([sys.executable, "-m", "bench.peers", "--quick", "--seeds", "0", "1", "--models", "encoder",
                          "demucs"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    per_seed = re.findall(r"seed (\d+), \d+ held out", out.stdout)
    assert per_seed == ["0", "1"]  # one run per seed, each with its own table
    rows = _rows(out.stdout)
    runs = [r for r in rows if len(r) == 6 and r[0] != "pair" and " - " not in r[0]]  # the per-seed tables
    assert {r[0] for r in runs} == {"SynthEncoder", "Demucs (v2 waveform)", "mix", "oracle", "hpss"}  # only the chosen pair
    summary = {r[0]: r for r in rows if len(r) == 5}
    assert set(summary) == {"SynthEncoder", "Demucs (v2 waveform)", "mix", "oracle", "hpss"}
    for name, row in summary.items():  # the mean of the per-seed medians is their mean
        medians = [float(m) for m in row[1].split(" / ")]
        seed_medians = [float(r[4]) for r in runs if r[0] == name]
        assert medians == seed_medians and abs(float(row[2]) - sum(medians) / 2) < 0.006
    (pair,) = [r for r in rows if r[0] == "SynthEncoder - Demucs (v2 waveform)"]
    diffs = [float(d) for d in pair[1].split(" / ")]
    expected = [float(e[4]) - float(d[4]) for e, d in zip([r for r in runs if r[0] == "SynthEncoder"],
                                                          [r for r in runs if r[0] == "Demucs (v2 waveform)"])]
    assert all(abs(d - e) < 0.011 for d, e in zip(diffs, expected))
    assert pair[5] == f"{sum(d > 0 for d in expected)} of 2"


def test_synthmatch_benchmark_quick_mode_scores_matching_against_random_segments():
    out = subprocess.run([sys.executable, "-m", "bench.synthmatch", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r[0]: r for r in _rows(out.stdout) if r[0] != "method"}
    assert set(rows) == {"SynthMatch", "random segments", "database, true descriptors", "mix", "oracle mask"}
    lmd = {name: float(row[2]) for name, row in rows.items()}
    assert all(int(row[1]) > 0 and lmd[name] > 0 for name, row in rows.items())
    # the database queried with the true descriptors is the ceiling: closer than random segments
    assert lmd["database, true descriptors"] < lmd["random segments"]
    assert lmd["oracle mask"] < lmd["mix"]


def test_the_memory_estimate_counts_musicgen_small_as_published():
    """The memory table is an estimate from parameter counts; the counts are checked against
    an independent figure: the Hugging Face hub lists facebook/musicgen-small (LM, T5 encoder
    and EnCodec together) at 591M parameters."""
    from bench.synthgen import SIZES, frozen_params, lm_on_meta

    lm = sum(p.numel() for p in lm_on_meta(SIZES["musicgen-small"]).parameters())
    assert abs(lm + frozen_params() - 591e6) < 0.03 * 591e6


def test_query_ceilings_quick_mode_ranks_the_oracle_mask_above_a_gain_per_description():
    out = subprocess.run([sys.executable, "-m", "bench.queries", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r[1]: r for r in _rows(out.stdout) if r[0] != "held-out set"}
    assert set(rows) == {"oracle ratio mask", "oracle static gain", "description's static gain, true synth",
                         "description's static gain, mix"}
    assert all(int(r[2]) > 0 for r in rows.values())
    mean = {name: float(r[3]) for name, r in rows.items()}
    # knowing the part's whole spectrogram beats knowing its spectrum, which beats knowing its description;
    # each answer is closer to the part asked for than to the other one
    assert mean["oracle ratio mask"] > mean["oracle static gain"] > mean["description's static gain, mix"] > 0


def test_the_measured_step_runs_audiocrafts_configs_with_lora_and_checkpointing_at_a_toy_size():
    """`bench.synthgen --measure` on the CPU at the toy size: the same code as on a GPU, one step
    with and one without gradient checkpointing, which must not change the loss; LoRA leaves
    most of the LM frozen."""
    out = subprocess.run([sys.executable, "-m", "bench.synthgen", "--measure", "--scale", "tiny", "--steps", "1",
                          "--batch", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r[4]: r for r in _rows(out.stdout)}
    assert set(rows) == {"no", "yes"} and all(r[0] == "tiny" and r[3] == "2" for r in rows.values())
    for r in rows.values():
        lm, trainable = float(r[1].rstrip("M")), float(r[2].rstrip("M"))
        assert 0 < trainable < lm and float(r[7]) > 0 and float(r[8]) > 0
    assert 0 < float(rows["no"][9]) == pytest.approx(float(rows["yes"][9]), abs=0.01)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_measuring_the_real_sizes_without_a_gpu_is_refused_in_one_line():
    out = subprocess.run([sys.executable, "-m", "bench.synthgen", "--measure"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and "needs a GPU" in out.stderr and "Traceback" not in out.stderr


def test_the_measured_codec_is_musicgens_32_khz_encodec_and_the_lms_are_the_estimated_sizes():
    from omegaconf import OmegaConf

    from bench.synthgen import CARD, N_Q, SIZES, real_size_configs
    from synthgen_lib.models import audiocraft_compat  # noqa: F401
    from audiocraft.models import builders

    for name, shape in SIZES.items():
        lm, codec_cfg = real_size_configs(name, "cpu")
        t = lm["transformer_lm"]
        assert (t["dim"], t["num_heads"], t["num_layers"]) == (shape["dim"], shape["num_heads"], shape["num_layers"])
        assert bool(lm["fuser"]["cross"]) == shape["cross_attention"]
    codec = builders.get_compression_model(OmegaConf.create(codec_cfg))
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks, codec.cardinality) == (32000, 50, N_Q, CARD)
