"""The shared training loop on tiny models and tiny synthetic data (CPU, seconds)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.models import load_checkpoint, load_model
from synthgen_lib.train import EQ_POINTS, SegmentDataset, TrainConfig, lr_factor, random_eq, train

from .conftest import torchrun

TINY_MODELS = {"lstm": {"n_fft": 512, "hop_length": 128, "n_mels": 32, "hidden_size": 32, "num_layers": 1},
               "encoder": {"channels": 8, "depth": 3, "lstm_layers": 1},
               "synthmatch": {"n_fft": 512, "hop_length": 128, "n_mels": 32, "hidden_size": 32, "num_layers": 1,
                              "database_examples": 8}}


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(num_tracks=6, seed=3, track_duration=12.0, cache=8)


def _cfg(family, **kw):
    base = dict(model=family, epochs=2, batch_size=4, segment=1.5, steps_per_epoch=5, sample_rate=16000,
                lr=3e-3, warmup_steps=2, valid_fraction=0.34, valid_segment=4.0, log_every=2)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("family", ["lstm", "encoder", "synthmatch"])
def test_two_epochs_lower_the_validation_loss_and_write_checkpoints(tmp_path, source, family):
    torch.manual_seed(0)
    result = train(source, tmp_path, _cfg(family, epochs=3), TINY_MODELS[family], progress=False)
    losses = [h["valid_loss"] for h in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result.step == 15
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["train"]["best_valid_loss"] == pytest.approx(min(losses))
    assert "optimizer" not in best["train"] and "optimizer" in load_checkpoint(tmp_path / "last.pt")["train"]
    model = load_model(tmp_path / "best.pt", family=family)
    assert model.config.sample_rate == 16000
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if "valid_loss" in x] == [1, 2, 3]
    assert [x["step"] for x in lines if "valid_loss" not in x] == [2, 4, 6, 8, 10, 12, 14]


def test_best_checkpoint_is_the_lowest_validation_loss_not_the_last(tmp_path, source):
    # A learning rate this high makes later epochs worse: best.pt must keep the earlier weights.
    result = train(source, tmp_path, _cfg("lstm", epochs=4, lr=0.3, warmup_steps=1, grad_clip=0),
                   TINY_MODELS["lstm"], progress=False)
    losses = [h["valid_loss"] for h in result.history]
    best_epoch = losses.index(min(losses)) + 1
    assert load_checkpoint(tmp_path / "best.pt")["train"]["epoch"] == best_epoch
    assert load_checkpoint(tmp_path / "last.pt")["train"]["epoch"] == 4


def _counting_steps(monkeypatch) -> list[int]:
    """Count the optimizer steps taken from now on."""
    taken = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        taken.append(1)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return taken


def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tmp_path, source, monkeypatch):
    cfg = _cfg("lstm", epochs=2)
    with_dropout = {**TINY_MODELS["lstm"], "num_layers": 2, "dropout": 0.3}  # dropout draws from the RNG
    full = train(source, tmp_path / "full", cfg, with_dropout, progress=False)
    part = train(source, tmp_path / "cut", cfg, with_dropout, progress=False, stop_after_steps=7)
    assert part.step == 7 and part.epoch == 1  # stopped in the middle of the second epoch
    taken = _counting_steps(monkeypatch)
    resumed = train(source, tmp_path / "cut", cfg, with_dropout, progress=False)
    assert resumed.step == full.step == 10
    assert len(taken) == 3  # only the steps that were left, not a restart that ends in the same place
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert a["train"]["history"] == [{**h, "time": a["train"]["history"][i]["time"]}
                                     for i, h in enumerate(b["train"]["history"])]  # train loss included
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len((tmp_path / "full" / "metrics.jsonl").read_text().splitlines())


def test_resume_refuses_another_family(tmp_path, source):
    train(source, tmp_path, _cfg("lstm", epochs=1), TINY_MODELS["lstm"], progress=False, stop_after_steps=1)
    from synthgen_lib.models import CheckpointError

    with pytest.raises(CheckpointError, match="holds a 'lstm' run, not 'encoder'"):
        train(source, tmp_path, _cfg("encoder"), TINY_MODELS["encoder"], progress=False)


def test_init_starts_a_new_run_from_a_trained_model_and_keeps_what_it_learnt(tmp_path, source):
    base = train(source, tmp_path / "base", _cfg("lstm", epochs=3), TINY_MODELS["lstm"], progress=False)
    # No model settings given: the architecture (and the learnt input normalisation) come from
    # the checkpoint, not from the default config or from this data.
    tuned = train(source, tmp_path / "tuned", _cfg("lstm", epochs=1), progress=False, init=base.best)
    assert tuned.step == 5  # a new schedule, counted from 0
    assert tuned.history[0]["valid_loss"] < base.history[0]["valid_loss"]  # a head start
    saved = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert saved["config"]["hidden_size"] == 32 and saved["meta"]["init_from"] == str(base.best.resolve())
    assert saved["train"]["step"] == 5
    # With a vanishing learning rate the first step leaves the checkpoint's parameters as they were.
    train(source, tmp_path / "still", _cfg("lstm", epochs=1, lr=1e-12), progress=False, init=base.best,
          stop_after_steps=1)
    before, after = load_checkpoint(base.best)["model"], load_checkpoint(tmp_path / "still" / "last.pt")["model"]
    params = [k for k, _ in load_model(base.best).named_parameters()]
    assert "input_mean" in params
    for k in params:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=1e-8)


def test_init_refuses_another_family_other_sizes_and_a_changed_start(tmp_path, source):
    from synthgen_lib.errors import SynthGenError
    from synthgen_lib.models import CheckpointError

    base = train(source, tmp_path / "base", _cfg("lstm", epochs=1), TINY_MODELS["lstm"], progress=False)
    with pytest.raises(CheckpointError, match=r"base/best.pt: is a 'lstm' checkpoint, not 'encoder'"):
        train(source, tmp_path / "a", _cfg("encoder"), progress=False, init=base.best)
    with pytest.raises(CheckpointError, match=r"base/best.pt: weights do not fit the model settings given .*"
                       r"\(size mismatch for "):
        train(source, tmp_path / "b", _cfg("lstm"), {"hidden_size": 48}, progress=False, init=base.best)
    with pytest.raises(CheckpointError, match=r"was trained with sample_rate 16000 \(this run: 8000\)"):
        train(source, tmp_path / "c", _cfg("lstm", sample_rate=8000), progress=False, init=base.best)
    # a convolutional front end may be grown on it (the model answers for that: tests/models)
    grown = train(source, tmp_path / "grown", _cfg("lstm"), {"conv_channels": 2}, progress=False, init=base.best,
                  stop_after_steps=1)
    assert load_checkpoint(grown.last)["config"]["conv_channels"] == 2 and "conv.0.weight" in load_model(grown.last).state_dict()
    # dropout does not change the weights' shapes: allowed
    train(source, tmp_path / "d", _cfg("lstm"), {"dropout": 0.1}, progress=False, init=base.best, stop_after_steps=1)
    # the same file named by a relative path is the same start
    train(source, tmp_path / "d", _cfg("lstm"), {"dropout": 0.1}, progress=False, init=os.path.relpath(base.best),
          stop_after_steps=2)
    with pytest.raises(SynthGenError, match="this run started from .*base/best.pt, not .*base/last.pt"):
        train(source, tmp_path / "d", _cfg("lstm"), {"dropout": 0.1}, progress=False, init=tmp_path / "base" / "last.pt")
    resumed = train(source, tmp_path / "d", _cfg("lstm"), progress=False)  # resuming needs no init
    assert resumed.step == 10
    assert load_checkpoint(tmp_path / "d" / "last.pt")["meta"]["init_from"] == str(base.best.resolve())  # and keeps it


def test_augmentation_is_deterministic_per_epoch_and_index(source):
    from synthgen_lib.data import make_windows

    cfg = _cfg("lstm")
    windows = make_windows(source.tracks(), 10.0, 5.0, 0.34, 0).of("train")
    ds = SegmentDataset(source, windows, cfg, augment=True)
    a = ds[1]
    assert torch.equal(a[0], ds[1][0]) and torch.equal(a[1], ds[1][1])
    ds.set_epoch(1)
    assert not torch.equal(a[0], ds[1][0])
    mix, synth = a
    assert mix.shape == synth.shape == (2, 24000)
    plain = SegmentDataset(source, windows, cfg, augment=False)[1]
    assert not torch.allclose(plain[0], mix)


def test_random_eq_gives_each_control_frequency_its_drawn_gain_and_keeps_the_rest_smooth():
    rate, n = 32000, 32000
    t = torch.arange(n) / rate
    tones = {f: torch.sin(2 * torch.pi * f * t) for f in (EQ_POINTS[1], EQ_POINTS[3], 30.0, 15000.0)}
    drawn = (torch.rand(len(EQ_POINTS), generator=torch.Generator().manual_seed(5)) * 2 - 1) * 9.0
    for f, tone in tones.items():
        out = random_eq(tone[None].repeat(2, 1), rate, 9.0, torch.Generator().manual_seed(5))
        gain_db = 20 * torch.log10(out.std(dim=-1) / tone.std())
        expected = drawn[1] if f == EQ_POINTS[1] else drawn[3] if f == EQ_POINTS[3] else \
            drawn[0] if f < EQ_POINTS[0] else drawn[-1]  # flat beyond the end points
        assert torch.allclose(gain_db, expected.expand(2), atol=0.05), (f, gain_db, expected)
    between = random_eq(torch.sin(2 * torch.pi * 250.0 * t)[None], rate, 9.0, torch.Generator().manual_seed(5))
    gain = 20 * torch.log10(between.std() / tones[30.0].std())
    frac = (math.log(250.0) - math.log(EQ_POINTS[1])) / (math.log(EQ_POINTS[2]) - math.log(EQ_POINTS[1]))
    assert abs(gain - (drawn[1] + frac * (drawn[2] - drawn[1]))) < 0.05  # interpolated over log-frequency


def test_eq_augmentation_shapes_synth_and_accompaniment_separately_and_keeps_the_sum(source):
    from synthgen_lib.data import make_windows

    windows = make_windows(source.tracks(), 10.0, 5.0, 0.34, 0).of("train")
    flat, shaped = (SegmentDataset(source, windows, _cfg("lstm", eq_db=eq), augment=True)[2] for eq in (0.0, 12.0))
    assert not torch.allclose(flat[1], shaped[1], atol=1e-3)  # the synth was equalised
    spectrum = lambda x: torch.fft.rfft(x, dim=-1).abs().mean(0)  # noqa: E731
    synth_gain = spectrum(shaped[1]) / spectrum(flat[1]).clamp_min(1e-6)
    accomp_gain = spectrum(shaped[0] - shaped[1]) / spectrum(flat[0] - flat[1]).clamp_min(1e-6)
    band = slice(2000, 4000)  # 1.3-2.7 kHz at 16 kHz, 1.5 s: both stems have energy there
    assert not torch.allclose(synth_gain[band].median(), accomp_gain[band].median(), rtol=0.05)  # each its own curve


def test_two_process_ddp_on_cpu_trains_and_saves_one_checkpoint(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(f"""
        import torch
        from synthgen_lib.data.synthetic import SyntheticSource
        from synthgen_lib.train import TrainConfig, train
        torch.set_num_threads(1)
        src = SyntheticSource(num_tracks=4, seed=3, track_duration=11.0)
        cfg = TrainConfig(model="lstm", epochs=1, batch_size=2, segment=1.0, steps_per_epoch=3,
                          sample_rate=16000, valid_fraction=0.25, valid_segment=2.0, warmup_steps=1)
        r = train(src, {str(tmp_path / 'run')!r}, cfg, {TINY_MODELS['lstm']!r}, progress=False)
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        open({str(tmp_path)!r} + f"/rank{{rank}}.txt", "w").write(f"WORLD {{world}} STEP {{r.step}}")
    """))
    proc = torchrun(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):  # each process took every other batch of the 3 steps
        assert (tmp_path / f"rank{rank}.txt").read_text() == "WORLD 2 STEP 3"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["step"] == 3


def test_a_run_killed_with_sigkill_resumes_to_the_same_end(tmp_path):
    """Kill a training process mid-epoch (SIGKILL), resume it, compare with an uninterrupted run."""
    import signal
    import time

    run = tmp_path / "run"
    script = tmp_path / "train_run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        from synthgen_lib.data.synthetic import SyntheticSource
        from synthgen_lib.train import TrainConfig, train
        torch.set_num_threads(1)
        src = SyntheticSource(num_tracks=5, seed=3, track_duration=11.0, cache=8)
        cfg = TrainConfig(model="lstm", epochs=3, batch_size=2, segment=1.0, steps_per_epoch=6, sample_rate=16000,
                          valid_fraction=0.2, valid_segment=2.0, warmup_steps=1, save_every=1, log_every=1)
        taken, step = [], torch.optim.AdamW.step
        def counted(self, *args, **kwargs):
            taken.append(1)
            return step(self, *args, **kwargs)
        torch.optim.AdamW.step = counted
        train(src, sys.argv[1], cfg, {TINY_MODELS['lstm']!r}, progress=False)
        print("optimizer steps", len(taken))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(run)], env=env)
    deadline = time.time() + 300
    step = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            step = load_checkpoint(run / "last.pt")["train"]["step"]
        except Exception:  # not written yet
            step = 0
        if step >= 8:  # inside the second epoch
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 8 <= step < 18
    interrupted = load_checkpoint(run / "last.pt")["train"]
    done = subprocess.run([sys.executable, str(script), str(run)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"optimizer steps {18 - interrupted['step']}" in done.stdout  # resumed, not restarted
    subprocess.run([sys.executable, str(script), str(tmp_path / "clean")], env=env, check=True, timeout=600)
    last, clean = load_checkpoint(run / "last.pt"), load_checkpoint(tmp_path / "clean" / "last.pt")
    assert last["train"]["step"] == clean["train"]["step"] == 18
    assert last["train"]["valid_tracks"] == interrupted["valid_tracks"] == clean["train"]["valid_tracks"]
    for k in last["model"]:
        torch.testing.assert_close(last["model"][k], clean["model"][k], rtol=0, atol=0)
    assert load_model(run / "best.pt").config.sample_rate == 16000
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no half-written leftovers
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if "valid_loss" not in json.loads(x)]
    assert steps == list(range(1, 19))  # every step logged once, none twice


def test_resume_refuses_a_changed_dataset(tmp_path, source):
    train(source, tmp_path, _cfg("lstm", epochs=1), TINY_MODELS["lstm"], progress=False, stop_after_steps=1)
    other = SyntheticSource(num_tracks=6, seed=4, track_duration=12.0)
    from synthgen_lib.errors import SynthGenError

    with pytest.raises(SynthGenError, match="the dataset changed since this run started"):
        train(other, tmp_path, _cfg("lstm", epochs=1), TINY_MODELS["lstm"], progress=False)


def test_resume_refuses_a_changed_batch_geometry(tmp_path, source):
    train(source, tmp_path, _cfg("lstm"), TINY_MODELS["lstm"], progress=False, stop_after_steps=2)
    from synthgen_lib.errors import SynthGenError

    with pytest.raises(SynthGenError, match="was started with 5 steps per epoch on 1 process"):
        train(source, tmp_path, _cfg("lstm", steps_per_epoch=7), TINY_MODELS["lstm"], progress=False)


def test_torn_metrics_line_does_not_block_resume(tmp_path, source):
    train(source, tmp_path, _cfg("lstm"), TINY_MODELS["lstm"], progress=False, stop_after_steps=6)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "train_lo')  # the process died mid-write
    result = train(source, tmp_path, _cfg("lstm"), TINY_MODELS["lstm"], progress=False)
    assert result.step == 10
    assert all(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


def test_learning_rate_warms_up_then_decays_to_its_floor():
    cfg = TrainConfig(warmup_steps=4, final_lr_ratio=0.1)
    assert [lr_factor(cfg, s, 0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    decay = [lr_factor(cfg, 10, p / 10) for p in range(11)]
    assert decay[0] == pytest.approx(1.0) and decay[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(decay, decay[1:]))  # strictly down the whole way
    assert lr_factor(cfg, 10, 1.7) == pytest.approx(0.1)  # past the end (a run over budget) stays at the floor
    assert lr_factor(cfg, 10, 0.5) == pytest.approx(0.55)  # cosine: half way is the mid point


class _NaNFromTrack(SyntheticSource):
    """Tracks whose mixes hold a NaN sample (a broken file in a dataset)."""

    def _load(self, info, sample_rate, offset, duration):
        mix, synth = super()._load(info, sample_rate, offset, duration)
        mix[..., :: 997] = float("nan")
        return mix, synth


@pytest.mark.parametrize("case", ["nan data", "lr far too high"])
def test_a_run_that_diverges_stops_in_one_line_and_keeps_no_broken_checkpoint(tmp_path, source, case):
    from synthgen_lib.train import TrainingDiverged

    data = _NaNFromTrack(num_tracks=6, seed=3, track_duration=12.0) if case == "nan data" else source
    settings = dict(save_every=1, grad_clip=0) | ({"lr": 1e12, "warmup_steps": 1} if case != "nan data" else {})
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: the (loss \(nan\)|weights|loss \(inf\))"):
        train(data, tmp_path, _cfg("encoder", **settings), TINY_MODELS["encoder"], progress=False)
    for name in ("last.pt", "best.pt"):  # whatever was written is a working model
        if (tmp_path / name).is_file():
            state = load_checkpoint(tmp_path / name)["model"]
            assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_a_sample_rate_in_the_model_settings_is_applied_to_the_data_too(tmp_path, source, monkeypatch):
    import synthgen_lib.train as module

    rates = []
    original = module.SegmentDataset.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        rates.append(self.cfg.sample_rate)
    monkeypatch.setattr(module.SegmentDataset, "__init__", spy)
    train(source, tmp_path, _cfg("lstm", epochs=1), {**TINY_MODELS["lstm"], "sample_rate": 8000}, progress=False,
          stop_after_steps=1)  # the run's own rate is 16000
    assert load_checkpoint(tmp_path / "last.pt")["config"]["sample_rate"] == 8000
    assert rates and set(rates) == {8000}  # the windows were read at the model's rate


# -- text queries ---------------------------------------------------------------------------------

def _query_windows(source, split="train"):
    from synthgen_lib.data import make_windows

    return make_windows(source.tracks(), 10.0, 5.0, 0.34, 0).of(split)


def test_query_examples_target_the_part_asked_for_or_silence_for_an_absent_one(source):
    from synthgen_lib.data.queries import roles_named
    from synthgen_lib.models.query import embed_queries

    windows = _query_windows(source) + _query_windows(source, "valid")
    assert any(source.info(w.track).parts for w in windows)
    ds = SegmentDataset(source, windows, _cfg("lstm", queries=0.8, query_negatives=0.3, query_mix=0.0), augment=False)
    ds.query_embedding = "ngram"
    seen = {"none": 0, "part": 0, "absent": 0, "whole": 0}
    for epoch in range(6):
        ds.set_epoch(epoch)  # validation never changes epoch: the same queries every time
        for i, w in enumerate(windows):
            mix, target, query = ds[i]
            info = source.info(w.track)
            plain = SegmentDataset(source, windows, _cfg("lstm"), augment=False)[i]
            assert torch.equal(mix, plain[0])
            if not query.any():
                seen["none"] += 1
                assert torch.equal(target, plain[1])
                continue
            if not target.any():
                seen["absent"] += 1
                own = set().union(*(roles_named(d) for d in info.part_descriptions()))
                texts = [d for t in source.tracks() for d in t.part_descriptions() if not roles_named(d) & own]
                assert any(torch.allclose(query, embed_queries([d], "ngram")[0]) for d in texts)
                continue
            if not info.parts:
                seen["whole"] += 1
                assert torch.equal(target, plain[1])
                assert torch.allclose(query, embed_queries(info.part_descriptions(), "ngram")[0])
                continue
            seen["part"] += 1
            audio = source.load(w.track, 16000, 2, w.start + ds._room(w) / 2, 1.5)  # no augmentation: the middle crop
            k = next(k for k, p in enumerate(info.parts) if torch.allclose(target, audio.parts[p.name]))
            assert torch.allclose(query, embed_queries([info.parts[k].description], "ngram")[0])
    assert min(seen.values()) > 0, seen


def test_a_second_synth_from_another_track_is_added_and_either_is_asked_for(source):
    from synthgen_lib.data.queries import roles_named
    from synthgen_lib.models.query import embed_queries

    windows = _query_windows(source)
    cfg = _cfg("lstm", queries=1.0, query_negatives=0.0, query_mix=1.0)
    ds, plain = SegmentDataset(source, windows, cfg, augment=False), SegmentDataset(source, windows, _cfg("lstm"), False)
    ds.query_embedding = "ngram"
    asked = {"own": 0, "second": 0}
    for i, w in enumerate(windows):
        mix, target, query = ds[i]
        own = set().union(*(roles_named(d) for d in source.info(w.track).part_descriptions()))
        second = mix - plain[i][0]
        partners = [t for t in map(source.info, {w.track for w in windows}) if not t.parts
                    and roles_named(t.description.split(";")[0]) and not roles_named(t.description.split(";")[0]) & own]
        if not partners:
            assert torch.equal(second, torch.zeros_like(second))
            continue
        if second.abs().max() < 1e-3:  # the other track's synth rests in this crop
            continue
        if torch.allclose(target, second, atol=1e-6):
            asked["second"] += 1
            assert any(torch.allclose(query, embed_queries(t.part_descriptions(), "ngram")[0]) for t in partners)
        else:
            asked["own"] += 1
            assert not torch.allclose(query, torch.zeros_like(query))
            assert (target - second).abs().max() > 1e-3 and (mix - target - second).abs().max() > 1e-3
    assert min(asked.values()) > 0, asked


def test_a_query_for_an_absent_part_may_get_a_second_synth_that_lacks_that_part_too():
    from synthgen_lib.data.queries import roles_named
    from synthgen_lib.models.query import embed_queries

    source = SyntheticSource(num_tracks=10, seed=3, track_duration=12.0, cache=10)  # five roles among them
    windows = _query_windows(source) + _query_windows(source, "valid")
    cfg = _cfg("lstm", queries=1.0, query_negatives=1.0, query_mix=0.0, query_mix_absent=1.0)
    ds, plain = SegmentDataset(source, windows, cfg, augment=False), SegmentDataset(source, windows, _cfg("lstm"), False)
    ds.query_embedding = "ngram"
    pool = sorted({d for t in source.tracks() for d in t.part_descriptions()})
    one_part = [w for w in windows if not source.info(w.track).parts]
    mixed = 0
    for i, w in enumerate(windows):
        mix, target, query = ds[i]
        if not ds.picker.absent(source.info(w.track)):  # no description names a part this track lacks
            continue
        assert not target.any()  # still silence
        asked = roles_named(next(d for d in pool if torch.allclose(query, embed_queries([d], "ngram")[0])))
        second = mix - plain[i][0]
        if second.abs().max() < 1e-3:  # no partner fits, or its synth rests in this crop
            continue
        mixed += 1
        crops = {o.track: plain[windows.index(o)][1] for o in one_part}
        track = max(crops, key=lambda t: torch.nn.functional.cosine_similarity(
            crops[t].flatten(), second.flatten(), dim=0))
        roles = roles_named(source.info(track).part_descriptions()[0])
        own = set().union(*(roles_named(d) for d in source.info(w.track).part_descriptions()))
        assert roles and not roles & asked and not roles & own, (roles, asked, own)
    assert mixed > 0


def test_an_augmented_query_target_goes_through_the_synths_augmentations(source):
    from synthgen_lib.train import _seeded

    windows = _query_windows(source)
    i = next(i for i, w in enumerate(windows) if source.info(w.track).parts)
    ds = SegmentDataset(source, windows, _cfg("lstm", queries=1.0, eq_db=9.0, remix_prob=0.0), augment=True)
    for offset in torch.linspace(0, ds._room(windows[i]), 8).tolist():  # a crop where both parts play
        results = [ds._example(windows[i], i, _seeded(0, 0, i), offset, part) for part in ("", "part1", "part2", None)]
        whole, one, two, none = results
        if one[1].abs().max() > 1e-3 and two[1].abs().max() > 1e-3:
            break
    assert torch.equal(whole[0], one[0]) and torch.equal(whole[0], two[0]) and torch.equal(whole[0], none[0])
    assert torch.allclose(one[1] + two[1], whole[1], atol=1e-5)  # the same gain, channel swap, polarity and EQ
    assert one[1].abs().max() > 1e-3 and two[1].abs().max() > 1e-3 and not none[1].any()


@pytest.mark.parametrize("overrides", [{}, {"query_head": 4}])
def test_query_only_training_keeps_the_answer_without_a_query_and_learns_one(tmp_path, source, overrides):
    from synthgen_lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    base = build_model("lstm", {**TINY_MODELS["lstm"], "sample_rate": 16000})
    save_checkpoint(tmp_path / "base.pt", base)
    run = train(source, tmp_path / "q", _cfg("lstm", epochs=1, queries=0.3, query_only=True), overrides,
                progress=False, init=tmp_path / "base.pt")
    model, start = load_model(run.last), load_model(tmp_path / "base.pt")
    assert model.config.queries and model.config.query_embedding in ("minilm", "ngram")
    assert load_checkpoint(run.last)["config"]["queries"] is True
    mix = source.load(source.tracks()[0].name, 16000, 2, 0.0, 3.0).mix[None]
    with torch.no_grad():
        assert torch.equal(model(mix), start(mix))  # batch-norm statistics included
        assert (model(mix, query="warm pad") - start(mix)).abs().max() > 1e-4
    frozen = {k for k, _ in model.named_parameters() if not k.startswith("query_")}
    for k in frozen:
        assert torch.equal(model.state_dict()[k], start.state_dict()[k])
    if overrides:  # the head grew (at zero) and learnt
        assert model.config.query_head == 4 and model.query_head.out.weight.abs().max() > 0


def test_training_the_presence_gate_alone_closes_it_on_absent_parts_and_changes_nothing_else(tmp_path, source):
    """Every example asks for a role its track lacks; only the gate (grown open) learns: it closes,
    and every other layer, the query layers included, stays as it was."""
    from synthgen_lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "base.pt", build_model("lstm", {**TINY_MODELS["lstm"], "sample_rate": 16000}))
    cfg = _cfg("lstm", epochs=10, lr=0.5, queries=1.0, query_negatives=1.0, query_only=True, query_layers="gate")
    run = train(source, tmp_path / "g", cfg, {"query_gate": True}, progress=False, init=tmp_path / "base.pt")
    model, start = load_model(run.last), load_model(tmp_path / "base.pt")
    assert model.config.query_gate and model.query_gate.out.weight.abs().max() > 0  # grown at zero, it learnt
    for name, value in model.state_dict().items():
        if name in start.state_dict():
            assert torch.equal(value, start.state_dict()[name]), name
        elif not name.startswith("query_gate."):  # grown at zero, and not trained
            assert not value.any(), name
    info = next(t for t in source.tracks() if not t.parts and "pad" not in t.description.split(";")[0])
    mix = source.load(info.name, 16000, 2, 0.0, 4.0).mix[None]
    with torch.no_grad():
        every, absent = model(mix), model(mix, query="warm detuned saw pad, low register")
    assert torch.equal(every, start(mix))
    assert 10 * math.log10(absent.pow(2).sum() / every.pow(2).sum()) < -30


def test_queries_are_refused_where_they_cannot_be_trained(tmp_path, source):
    from synthgen_lib.errors import SynthGenError

    with pytest.raises(SynthGenError, match="the synthmatch family takes no text queries"):
        train(source, tmp_path / "a", _cfg("synthmatch", queries=0.5), TINY_MODELS["synthmatch"], progress=False)
    with pytest.raises(SynthGenError, match="--query-only trains the query layers of a trained model: give it --init"):
        train(source, tmp_path / "b", _cfg("lstm", query_only=True), TINY_MODELS["lstm"], progress=False)
    from synthgen_lib.models import build_model, save_checkpoint

    save_checkpoint(tmp_path / "base.pt", build_model("lstm", {**TINY_MODELS["lstm"], "sample_rate": 16000}))
    with pytest.raises(SynthGenError, match="--query-layers gate: this model has no such layers"):
        train(source, tmp_path / "c", _cfg("lstm", query_only=True, query_layers="gate"), progress=False,
              init=tmp_path / "base.pt")


def test_training_on_absent_parts_teaches_silence_for_a_description_of_no_part(tmp_path, source):
    """Every example asks for a role its track lacks: the query layers learn to close the mask,
    and the answer without a query stays the starting model's."""
    from synthgen_lib.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "base.pt", build_model("lstm", {**TINY_MODELS["lstm"], "sample_rate": 16000}))
    run = train(source, tmp_path / "q", _cfg("lstm", epochs=6, steps_per_epoch=10, lr=0.2, queries=1.0,
                                             query_negatives=1.0, query_only=True),
                progress=False, init=tmp_path / "base.pt")
    model, start = load_model(run.last), load_model(tmp_path / "base.pt")
    info = next(t for t in source.tracks() if not t.parts and "pad" not in t.description.split(";")[0])
    mix = source.load(info.name, 16000, 2, 0.0, 4.0).mix[None]
    with torch.no_grad():
        every, absent = model(mix), model(mix, query="warm detuned saw pad, low register")
    assert torch.equal(every, start(mix))
    assert 10 * math.log10(absent.pow(2).sum() / every.pow(2).sum()) < -10  # near-silence
