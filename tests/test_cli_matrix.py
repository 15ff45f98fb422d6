"""Every command x every model family, through the real ``synthgen`` command in a subprocess.

Models: both bundled ones and a tiny checkpoint of each of the four families. Each cell checks
the files written (lengths, rates, sound where audio is expected) or a one-line refusal with
exit status 2 that says what to use instead; never a traceback.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import TINY_SYNTHGEN, tone, write

MODELS = ["synthlstm-demo", "synthencoder-demo", "lstm", "encoder", "synthmatch", "synthgen"]
TASK = {"synthlstm-demo": "separator", "synthencoder-demo": "separator", "lstm": "separator",
        "encoder": "separator", "synthmatch": "matcher", "synthgen": "generator"}
TINY = {"lstm": {"n_fft": 512, "hop_length": 128, "n_mels": 16, "hidden_size": 16, "num_layers": 1},
        "encoder": {"channels": 4, "depth": 2, "lstm_layers": 1},
        "synthmatch": {"hidden_size": 16, "num_layers": 1, "database_size": 64, "database_examples": 4}}


def _synthgen(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "synthgen_lib.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def _refused(code, err, *phrases):
    lines = [line for line in err.strip().splitlines() if line.strip() and "%|" not in line]
    assert code == 2 and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("synthgen: error: "), err
    assert all(p in lines[0] for p in phrases), err


def _sound(path: Path, frames: int, rate: int, channels: int = 2) -> None:
    audio, got = sf.read(str(path), always_2d=True)
    assert (got, audio.shape) == (rate, (frames, channels)), path
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-4, f"{path} is silent"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A song, a small dataset, a token folder, and a checkpoint of every family."""
    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.models import build_model, save_checkpoint
    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig
    from synthgen_lib.prepare import prepare
    from synthgen_lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("matrix")
    song = write(root / "song.wav", tone(2.5, 44100, 2, freq=330.0), 44100)
    data = root / "data"
    prepare("synthetic", output=data, num_tracks=3, track_duration=11.0, seed=4, progress=False)
    paths = {name: name for name in ("synthlstm-demo", "synthencoder-demo")}
    for family in ("lstm", "encoder"):
        paths[family] = save_checkpoint(root / f"{family}.pt", build_model(family, TINY[family]))
    run = train(SyntheticSource(num_tracks=4, seed=1, track_duration=11.0), root / "match",
                TrainConfig(model="synthmatch", epochs=1, steps_per_epoch=1, batch_size=2, segment=1.5,
                            valid_segment=2.0, valid_fraction=0.25), TINY["synthmatch"], progress=False)
    paths["synthmatch"] = run.last
    paths["synthgen"] = save_checkpoint(root / "synthgen.pt", SynthGen(SynthGenConfig(**TINY_SYNTHGEN)))
    code, _, err = _synthgen("encode", "--source", "folder", "--root", data, "--output", root / "codes",
                             "--model-config", '{"window": 4.0, "dim": 32, "num_heads": 2, "num_layers": 2, '
                             '"n_q": 4, "card": 64}', "--window", "4")
    assert code == 0, err
    return {"root": root, "song": song, "data": data, "codes": root / "codes", "models": paths}


@pytest.mark.parametrize("name", MODELS)
def test_separate(world, tmp_path, name):
    code, out, err = _synthgen("separate", world["song"], "--model", world["models"][name], "--output", tmp_path)
    if TASK[name] == "generator":
        return _refused(code, err, "SynthGen writes a new synth stem", "use 'synthgen generate'")
    assert code == 0, err
    for stem in ("synth", "residual"):
        _sound(tmp_path / "song" / f"{stem}.wav", int(2.5 * 44100), 44100)


@pytest.mark.parametrize("name", MODELS)
def test_generate(world, tmp_path, name):
    code, out, err = _synthgen("generate", world["song"], "--model", world["models"][name], "--output", tmp_path,
                               "--top-k", "20", "--window", "4", "--description", "warm pad")
    if TASK[name] != "generator":
        return _refused(code, err, "not 'synthgen'")
    assert code == 0, err
    _sound(tmp_path / "song" / "synth.wav", int(2.5 * 44100), 44100)


@pytest.mark.parametrize("name", MODELS)
def test_evaluate(world, name):
    code, out, err = _synthgen("evaluate", "--model", world["models"][name], "--source", "folder", "--root",
                               world["data"], "--split", "all")
    if TASK[name] == "generator":
        return _refused(code, err, "SynthGen writes a new synth stem")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(str(world["models"][name])[:22]))
    assert int(row.split()[-1]) == 3  # one 10 s window in each 11 s track, all scored
    assert "oracle" in out


@pytest.mark.parametrize("name", MODELS)
def test_export(world, tmp_path, name):
    from synthgen_lib.models import load_model

    target = tmp_path / ("export" if TASK[name] == "generator" else "export.pt")
    code, out, err = _synthgen("export", world["models"][name], target, "--half")
    assert code == 0, err
    files = list(target.rglob("*")) if target.is_dir() else [target]
    size = sum(f.stat().st_size for f in files if f.is_file())
    printed = float(out.split("(")[-1].split()[0]) * (1e6 if " MB)" in out else 1e3)
    assert f"wrote {target}" in out and abs(printed - size) <= 0.06 * size  # the size written, in MB or kB
    if TASK[name] == "generator":
        assert {p.name for p in target.iterdir()} == {"state_dict.bin", "compression_state_dict.bin", "synthgen.pt"}
    else:
        assert type(load_model(target)) is type(load_model(world["models"][name]))


@pytest.mark.parametrize("name", MODELS)
def test_demo(world, tmp_path, name):
    code, out, err = _synthgen("demo", "--output", tmp_path, "--model", world["models"][name])
    if TASK[name] == "generator":
        return _refused(code, err, "SynthGen writes a new synth stem")
    assert code == 0, err
    page = (tmp_path / "index.html").read_text()
    assert page.count("<audio") >= 2
    assert any(tmp_path.rglob("synth.wav"))


@pytest.mark.parametrize("name", MODELS)
def test_train_init(world, tmp_path, name):
    from synthgen_lib.models import load_checkpoint

    family = load_checkpoint(world["models"][name])["family"]
    data = world["codes"] if family == "synthgen" else world["data"]
    code, out, err = _synthgen("train", "--model", family, "--data", data, "--output", tmp_path, "--init",
                               world["models"][name], "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
                               "--segment", "1.5", "--max-valid-windows", "2")
    assert code == 0, err
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["family"] == family and saved["train"]["step"] == 1
    assert saved["meta"]["init_from"] in (name, str(Path(world["models"][name]).resolve()))


@pytest.mark.parametrize("name", MODELS)
def test_generate_remix_separator(world, tmp_path, name):
    code, out, err = _synthgen("generate", world["song"], "--model", world["models"]["synthgen"], "--remix",
                               "--separator", world["models"][name], "--output", tmp_path, "--top-k", "20",
                               "--window", "4")
    if TASK[name] != "separator":  # a matcher's synth is rebuilt, a generator's new: neither removes the old one
        return _refused(code, err, "cannot remove the old synth")
    assert code == 0, err
    for stem in ("synth", "removed", "remixed"):
        _sound(tmp_path / "song" / f"{stem}.wav", int(2.5 * 44100), 44100)
