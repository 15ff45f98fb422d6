from __future__ import annotations

import math

import pytest
import torch

from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.evaluate import evaluate, hpss_harmonic, oracle_mask, sdr, si_sdr
from synthgen_lib.separate import Separation  # noqa: F401  (the module evaluate relies on)


def test_si_sdr_values():
    torch.manual_seed(0)
    ref = torch.randn(16000)
    noise = torch.randn(16000)
    noise = noise - noise.mean()
    noise = noise - (noise @ (ref - ref.mean())) / ((ref - ref.mean()) @ (ref - ref.mean())) * (ref - ref.mean())
    noise = noise / noise.norm() * (ref - ref.mean()).norm() / math.sqrt(10)  # 10 dB below
    assert float(si_sdr(ref + noise, ref)) == pytest.approx(10.0, abs=0.01)
    assert float(si_sdr(3.0 * (ref + noise), ref)) == pytest.approx(10.0, abs=0.01)  # scale-invariant
    assert float(sdr(3.0 * ref, ref)) == pytest.approx(-10 * math.log10(4), abs=0.01)  # SDR is not
    assert si_sdr(torch.stack([ref, ref + noise]), ref).shape == (2,)


def _tone_and_clicks(freq: float, first_click: int, sr: int = 16000) -> tuple[torch.Tensor, torch.Tensor]:
    """2 s of a sustained harmonic tone at ``freq``, and a train of 5 ms noise clicks (8 a second)."""
    t = torch.arange(2 * sr) / sr
    tone = 0.2 * sum(torch.sin(2 * torch.pi * freq * k * t) / k for k in (1, 2, 3))
    burst = torch.randn(80, generator=torch.Generator().manual_seed(0)) * torch.exp(-torch.arange(80) / 16.0)
    clicks = torch.zeros_like(t)
    for start in range(first_click, len(t) - 80, sr // 8):
        clicks[start:start + 80] += burst
    return tone, clicks


def test_hpss_harmonic_keeps_the_tone_and_drops_the_clicks_channel_by_channel():
    (tone_a, clicks_a), (tone_b, clicks_b) = _tone_and_clicks(220.0, 0), _tone_and_clicks(330.0, 1000)
    mix = tone_a + clicks_a
    harmonic = hpss_harmonic(mix)
    assert harmonic.shape == mix.shape
    # measured: the mix scores 8.4 dB against the tone, its harmonic part 18.7 (the percussive part -35)
    assert float(si_sdr(harmonic, tone_a)) > float(si_sdr(mix, tone_a)) + 6
    stereo = torch.stack([mix, tone_b + clicks_b])
    both = hpss_harmonic(stereo)
    assert both.shape == stereo.shape and hpss_harmonic(stereo[:1]).shape == (1, stereo.shape[-1])
    # each channel on its own: the stereo result is the two mono results
    assert torch.allclose(both[0], harmonic, atol=1e-5)
    assert torch.allclose(both[1], hpss_harmonic(stereo[1]), atol=1e-5)


def test_oracle_mask_beats_the_mix_and_every_reference_is_reported():
    src = SyntheticSource(num_tracks=4, seed=1, track_duration=11.0)
    audio = src.load(src.tracks()[0].name, 16000, 2)
    assert float(si_sdr(oracle_mask(audio.mix, audio.synth).flatten(), audio.synth.flatten())) > \
        float(si_sdr(audio.mix.flatten(), audio.synth.flatten())) + 3

    class Mix(torch.nn.Module):  # returns the mix: must score exactly like the "mix" row
        family = "mixcopy"
        config = type("C", (), {"sample_rate": 16000})()

        def forward(self, x):
            return x

    report = evaluate({"copy": Mix()}, src, split="all", window=10.0, hop=1.0)
    s = {k: v.summary() for k, v in report.methods.items()}
    assert list(s) == ["copy", "mix", "oracle", "hpss"]  # the models, then the references
    assert s["copy"]["windows"] == s["mix"]["windows"] == s["oracle"]["windows"] == s["hpss"]["windows"] == 4 * 2
    first = src.tracks()[0].name  # the hpss row scores hpss_harmonic's estimate of the mix
    audio = src.load(first, 16000, 2)
    assert report.methods["hpss"].track_si_sdr[first] == pytest.approx(
        float(si_sdr(hpss_harmonic(audio.mix).flatten(), audio.synth.flatten())), abs=1e-3)
    assert report.methods["hpss"].window_si_sdr != report.methods["mix"].window_si_sdr
    assert next(line for line in report.format().splitlines() if line.startswith("hpss"))
    assert s["copy"]["si_sdr_median"] == pytest.approx(s["mix"]["si_sdr_median"], abs=1e-3)
    assert s["oracle"]["si_sdr_median"] > s["mix"]["si_sdr_median"]
    assert "oracle" in report.format()
    assert report.improvement("copy") == pytest.approx((0.0, 0.0), abs=1e-3)  # doing nothing gains nothing
    oracle = report.methods["oracle"].window_si_sdr
    gains = [a - b for a, b in zip(oracle, report.methods["mix"].window_si_sdr)]
    assert report.improvement("oracle")[1] == pytest.approx(sum(gains) / len(gains)) and min(gains) > 0
    row = next(line for line in report.format().splitlines() if line.startswith("oracle")).split()
    assert float(row[4]) == pytest.approx(report.improvement("oracle")[1], abs=0.01)  # the SI-SDRi mean column
    assert report.windows == [(t.name, start) for t in src.tracks() for start in (0.0, 1.0)]
    worst = report.format_worst("oracle", 3).splitlines()
    assert worst[0] == "worst 3 windows of oracle (SI-SDR, dB)" and len(worst) == 2 + 3
    oracle_column = [float(line.split()[4]) for line in worst[2:]]  # track, start, copy, mix, oracle, hpss
    assert oracle_column == sorted(oracle_column)
    assert oracle_column[0] == pytest.approx(min(report.methods["oracle"].window_si_sdr), abs=0.01)


def test_a_checkpoint_is_scored_on_the_tracks_its_training_held_out(tmp_path):
    """Another --seed or --valid-fraction at evaluation must not score tracks the model trained on."""
    from synthgen_lib.errors import SynthGenError
    from synthgen_lib.models import load_checkpoint
    from synthgen_lib.train import TrainConfig, train

    src = SyntheticSource(num_tracks=6, seed=3, track_duration=11.0)
    cfg = TrainConfig(model="lstm", epochs=1, batch_size=2, segment=1.0, steps_per_epoch=1, sample_rate=16000,
                      valid_fraction=0.34, valid_segment=2.0, seed=5)
    tiny = {"n_fft": 256, "hop_length": 64, "n_mels": 16, "hidden_size": 8, "num_layers": 1}
    train(src, tmp_path / "a", cfg, tiny, progress=False)
    held = sorted(load_checkpoint(tmp_path / "a" / "last.pt")["train"]["valid_tracks"])
    report = evaluate({"a": tmp_path / "a" / "last.pt"}, src, seed=0, valid_fraction=0.5, window=10.0, hop=5.0)
    assert sorted({track for track, _ in report.windows}) == held
    assert "validation tracks the checkpoint records" in report.format()
    train(src, tmp_path / "b", TrainConfig(**{**cfg.__dict__, "seed": 6}), tiny, progress=False)  # other tracks
    with pytest.raises(SynthGenError, match="validated on different tracks"):
        evaluate({"a": tmp_path / "a" / "last.pt", "b": tmp_path / "b" / "last.pt"}, src)


def test_evaluate_run_reports_what_fits_the_family(tmp_path):
    """The Train notebook's one call: a separator's table, a matcher's beside its random baseline."""
    from synthgen_lib.evaluate import evaluate_run
    from synthgen_lib.prepare import prepare
    from synthgen_lib.train import TrainConfig, train

    data = tmp_path / "data"
    prepare("synthetic", output=data, num_tracks=4, track_duration=11.0, seed=2, progress=False)
    base = dict(epochs=1, batch_size=2, segment=1.0, steps_per_epoch=1, valid_fraction=0.25, valid_segment=2.0)
    lstm = train(data, tmp_path / "lstm", TrainConfig(model="lstm", **base),
                 {"n_fft": 256, "hop_length": 64, "n_mels": 16, "hidden_size": 8, "num_layers": 1}, progress=False)
    text = evaluate_run(lstm.best, data)
    assert text.splitlines()[1].startswith("lstm ") and "oracle" in text and "random segments" not in text
    match = train(data, tmp_path / "match", TrainConfig(model="synthmatch", **base),
                  {"hidden_size": 16, "num_layers": 1, "database_size": 64, "database_examples": 2}, progress=False)
    text = evaluate_run(match.best, data)
    assert text.splitlines()[1].startswith("match ") and "random segments" in text


def test_query_accuracy_scores_the_part_asked_for_against_the_others_and_absent_parts_by_level():
    from synthgen_lib.data.queries import QueryPicker
    from synthgen_lib.errors import SynthGenError
    from synthgen_lib.evaluate import query_accuracy

    src = SyntheticSource(num_tracks=16, seed=3, track_duration=12.0)
    two = [t for t in src.tracks() if t.parts]
    known = {text for p in two[0].parts for text in (p.description, p.description.split(",")[0])}

    class Asked(torch.nn.Module):  # keeps the mix for the parts it knows, a hundredth of it for any other
        # (SI-SDR does not see the level: the accuracy is the mix's whatever the answer)
        family = "asked"
        options = {"query": "which part"}
        config = type("C", (), {"sample_rate": 16000})()

        def forward(self, x, query=None):
            return x if query in known else 0.01 * x

    report = query_accuracy({"asked": Asked()}, src, split="all", window=10.0, hop=2.0, role_check=False)
    assert report.tracks == len(two) >= 2
    expected = []
    for info in two:
        audio = src.load(info.name, 16000, 2)
        parts = [audio.parts[p.name] for p in info.parts]
        for k in range(len(parts)):
            for start in (0, 2):
                a, b = start * 16000, (start + 10) * 16000
                refs = [p[:, a:b].flatten() for p in parts]
                if min(float(r.pow(2).mean().sqrt()) for r in refs) < 1e-3:
                    continue
                mix = audio.mix[:, a:b].flatten()
                others = [float(si_sdr(mix, r)) for j, r in enumerate(refs) if j != k]
                expected.append(float(si_sdr(mix, refs[k])) - sum(others) / len(others))
    scores = report.models["asked"]
    assert scores.accuracy["described"] == pytest.approx(expected, abs=1e-4)
    assert scores.accuracy["short"] == pytest.approx(expected, abs=1e-4)
    picker = QueryPicker(src.tracks())  # the absent part asked for: the first description naming other roles
    asked = [picker.absent(info)[0] for info in two]
    assert scores.absent == pytest.approx([0.0 if text in known else -40.0 for text in asked], abs=0.01)
    assert -40.0 in [round(x) for x in scores.absent] and "asked" in report.format()
    checked = query_accuracy({"asked": Asked()}, src, split="all", window=10.0, hop=2.0).models["asked"]
    faded = [a - b for a, b in zip(checked.absent + checked.present, scores.absent + scores.present)]
    assert max(faded) < 1e-3 and min(faded) < -3  # by default the role check fades some answers
    # the answer to each part that plays, re the mix: the mix itself where the model knows the part
    present = [0.0 if part.description in known else -40.0 for info in two for part in info.parts]
    assert scores.present == pytest.approx(present, abs=0.01) and "present med" in report.format()

    class Plain(Asked):
        options = {}

    with pytest.raises(SynthGenError, match="plain: this Plain was trained without text queries"):
        query_accuracy({"plain": Plain()}, src, split="all")
