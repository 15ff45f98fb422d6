from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from synthgen_lib.cli import main


def test_prepare_writes_the_dataset_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["prepare", "--tracks", "2", "--track-duration", "10.5", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "source: synthetic — 2 tracks" in text and f"dataset at {out}" in text
    assert sorted(p.name for p in (out / "mix").iterdir()) == ["synthetic_s0_00000.wav", "synthetic_s0_00001.wav"]
    assert len(list((out / "description").glob("*.txt"))) == 2


def test_prepare_two_parts_sets_the_share_of_tracks_with_two_synth_parts(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["prepare", "--tracks", "3", "--track-duration", "10", "--two-parts", "1", "--seed", "4",
                 "--output", str(out)]) == 0
    for name in ("synthetic_s4_00000", "synthetic_s4_00001", "synthetic_s4_00002"):
        assert sorted(p.name for p in (out / "synth" / name).iterdir()) == ["part1.wav", "part2.wav"]
        assert len(list((out / "description" / name).glob("*.txt"))) == 2
    assert main(["prepare", "--two-parts", "2"]) == 2
    assert "argument --two-parts: must be at least 0 and at most 1" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "synthgen_lib.cli", "prepare", "--source", "folder", "--root",
                           str(out), "--two-parts", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "synthgen: error: the 'folder' source takes its parts from its tracks: the share of two-part tracks is "
        "for the synthetic and sampled sources"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthgen_lib.cli", "prepare", "--source", "folder",
                           "--root", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"synthgen: error: {tmp_path / 'nowhere'}: no such folder — check the path (is Google Drive mounted?)"]
    assert "Traceback" not in proc.stderr


def _tiny_checkpoint(path, meta=None):
    import torch

    from synthgen_lib.models import SynthLSTM, SynthLSTMConfig, save_checkpoint

    torch.manual_seed(0)
    model = SynthLSTM(SynthLSTMConfig(n_fft=512, hop_length=128, n_mels=16, hidden_size=16, num_layers=1))
    return save_checkpoint(path, model.eval(), meta=meta)


def test_separate_writes_synth_and_residual_per_input(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from .conftest import tone, write

    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    write(tmp_path / "in" / "song.wav", tone(1.3, 44100, 2), 44100)
    write(tmp_path / "in" / "sub" / "other.flac", tone(0.7, 22050, 1), 22050)
    write(tmp_path / "single.wav", tone(0.5, 16000, 1), 16000)
    (tmp_path / "in" / "._song.wav").write_bytes(b"macOS resource fork, not audio")  # must be skipped
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "in"), str(tmp_path / "single.wav"), "--model", str(ckpt),
                 "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["single", "song", "sub"]  # nothing for ._song.wav
    for name, rate, channels, frames in (("song", 44100, 2, 57330), ("sub/other", 22050, 1, 15435),
                                         ("single", 16000, 1, 8000)):
        for stem in ("synth", "residual"):
            info = sf.info(str(out / name / f"{stem}.wav"))
            assert (info.samplerate, info.channels, info.frames) == (rate, channels, frames)
        source = {"song": "in/song.wav", "sub/other": "in/sub/other.flac", "single": "single.wav"}[name]
        mix = sf.read(str(tmp_path / source), always_2d=True)[0]
        total = sf.read(str(out / name / "synth.wav"), always_2d=True)[0] + \
            sf.read(str(out / name / "residual.wav"), always_2d=True)[0]
        assert np.abs(total - mix).max() < 2e-4  # synth + residual == mix (24-bit files)
    assert capsys.readouterr().out.count("synth.wav, residual.wav") == 3


def test_separate_refuses_a_missing_input(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    assert main(["separate", str(tmp_path / "nope.wav"), "--model", str(ckpt), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.wav: no such file — check the path" in err and err.count("\n") == 1


def test_models_lists_bundled_names_first(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["synthlstm-demo", "synthencoder-demo"]


def test_export_strips_training_state_and_halves(tmp_path, capsys):
    from synthgen_lib.models import load_checkpoint

    started = str(tmp_path / "runs" / "lstm-7" / "best.pt")  # a path of the machine that trained it
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", meta={"init_from": started, "trained_steps": 3})
    assert main(["export", str(ckpt), str(tmp_path / "small.pt"), "--half"]) == 0
    payload = load_checkpoint(tmp_path / "small.pt")
    assert payload["meta"] == {"init_from": "lstm-7/best.pt", "trained_steps": 3, "exported_from": "m.pt"}
    assert payload["model"]["fc3.weight"].dtype.is_floating_point and str(payload["model"]["fc3.weight"].dtype) == "torch.float16"
    assert "optimizer" not in payload["train"] and "wrote" in capsys.readouterr().out


def test_train_init_fine_tunes_a_bundled_model_by_name(tmp_path, capsys):
    from synthgen_lib.models import load_checkpoint

    data = tmp_path / "ds"
    assert main(["prepare", "--tracks", "3", "--track-duration", "10.5", "--output", str(data)]) == 0
    assert main(["train", "--model", "lstm", "--data", str(data), "--output", str(tmp_path / "run"), "--init",
                 "synthlstm-demo", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "1", "--segment", "1",
                 "--valid-fraction", "0.34", "--max-valid-windows", "1", "--lr", "3e-4", "--no-cache-audio"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    run, bundled = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint("synthlstm-demo")
    assert run["train"]["config"]["cache_audio"] is False
    # the bundled model's settings, and the defaults of settings added since (no front end)
    assert {k: run["config"][k] for k in bundled["config"]} == bundled["config"] and run["config"]["conv_channels"] == 0
    assert run["meta"]["init_from"] == "synthlstm-demo"
    # trained on, not started over: still near the bundled weights, and not equal to them
    drift = (run["model"]["fc3.weight"] - bundled["model"]["fc3.weight"].float()).abs()
    assert 0 < drift.max() < 0.01


def test_train_stop_after_pauses_the_run_without_shortening_its_schedule(tmp_path, capsys):
    from synthgen_lib.models import load_checkpoint

    data = tmp_path / "ds"
    assert main(["prepare", "--tracks", "3", "--track-duration", "10.5", "--output", str(data)]) == 0
    args = ["train", "--model", "lstm", "--data", str(data), "--output", str(tmp_path / "run"), "--epochs", "3",
            "--steps-per-epoch", "2", "--batch-size", "1", "--segment", "1", "--valid-fraction", "0.34",
            "--max-valid-windows", "1", "--warmup-steps", "0", "--lr", "1e-3", "--model-config", '{"hidden_size": 16}']
    assert main(args + ["--stop-after", "2"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    paused = load_checkpoint(tmp_path / "run" / "last.pt")["train"]
    # step 2 of a 6-step cosine schedule (about 3/4 of the rate), not the end of a 2-step one (its floor)
    assert paused["step"] == 2 and paused["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.75e-3, rel=0.05)
    assert main(args) == 0  # the same command without the flag goes on to the end
    assert "trained 6 steps" in capsys.readouterr().out


def test_demo_writes_stems_and_a_page_with_players(tmp_path, capsys):
    from synthgen_lib.demo import build_example

    example = build_example(tmp_path / "example", duration=3.0)
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    from synthgen_lib.demo import run_demo

    page = run_demo(tmp_path / "demo", [str(ckpt)], example=example)
    text = page.read_text()
    assert text.count("<audio") == 4 and text.count("<img") == 4
    for src in ("mix.wav", "reference.wav", "tiny/synth.wav", "tiny/residual.wav"):
        assert f"src='{src}'" in text and (tmp_path / "demo" / src).is_file()
    assert "tiny: SI-SDR" in text and "the mix itself scores" in text


def test_separate_refuses_two_inputs_that_would_share_an_output(tmp_path, capsys):
    from .conftest import tone, write

    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    write(tmp_path / "a" / "song.wav", tone(0.5, 16000), 16000)
    write(tmp_path / "b" / "song.flac", tone(0.5, 16000), 16000)
    assert main(["separate", str(tmp_path / "a" / "song.wav"), str(tmp_path / "b" / "song.flac"),
                 "--model", str(ckpt), "--output", str(tmp_path / "out")]) == 2
    assert "would overwrite the stems of" in capsys.readouterr().err


def test_very_short_input_separates(tmp_path):
    import soundfile as sf

    from .conftest import tone, write

    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    write(tmp_path / "blip.wav", tone(0.01, 16000), 16000)  # 160 samples, shorter than one STFT frame
    assert main(["separate", str(tmp_path / "blip.wav"), "--model", str(ckpt), "--output", str(tmp_path / "o")]) == 0
    assert sf.info(str(tmp_path / "o" / "blip" / "synth.wav")).frames == 160


def test_shares_of_examples_may_be_every_example():
    from synthgen_lib.cli import build_parser

    args = build_parser().parse_args(["train", "--model", "lstm", "--data", "d", "--output", "o", "--queries", "1",
                                      "--query-mix", "1", "--query-negatives", "1", "--remix-prob", "1",
                                      "--query-mix-absent", "1"])
    assert (args.queries, args.query_mix, args.query_negatives, args.remix_prob, args.query_mix_absent) == (1.0,) * 5


@pytest.mark.parametrize("args, message", [
    (["separate", "x.wav", "--output", "o", "--overlap", "1"], "must be at least 0 and below 1"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--batch-size", "0"], "must be a finite number greater than 0"),
    (["train", "--model", "lstm", "--data", "synthetic", "--output", "o", "--model-config", "[1]"],
     "--model-config must be a JSON object"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--grad-clip", "-1"],  # would flip the gradient
     "must be a finite number of at least 0"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--gain-db", "nan"], "of at least 0, got nan"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--num-workers", "-1"], "of at least 0"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--query-mix", "1.5"], "at least 0 and at most 1"),
    (["train", "--model", "lstm", "--data", "d", "--output", "o", "--valid-fraction", "1"], "at least 0 and below 1"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse refuses before running: usage + one error line, status 2
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err


def test_synthgen_encode_train_export_generate_from_the_command_line(tmp_path, capsys):
    import json

    import soundfile as sf

    from synthgen_lib.models import load_checkpoint

    from .conftest import TINY_SYNTHGEN, tone, write

    codes, run = tmp_path / "codes", tmp_path / "run"
    config = json.dumps({**TINY_SYNTHGEN, "window": 2.0})
    assert main(["encode", "--tracks", "4", "--track-duration", "6", "--hop", "2", "--valid-fraction", "0.25",
                 "--output", str(codes), "--model-config", config, "--shard-size", "4"]) == 0
    assert "x realtime" in capsys.readouterr().out and (codes / "manifest.json").is_file()
    assert main(["train", "--model", "synthgen", "--data", str(codes), "--output", str(run), "--epochs", "1",
                 "--batch-size", "2", "--accumulate", "2", "--steps-per-epoch", "2",
                 "--model-config", '{"text_dropout": 0.3}']) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    # fine-tuning the trained SynthGen: its own settings and weights come with it, not the encode's
    assert main(["train", "--model", "synthgen", "--data", str(codes), "--output", str(tmp_path / "tuned"),
                 "--epochs", "1", "--batch-size", "2", "--steps-per-epoch", "1", "--lr", "1e-9",
                 "--init", str(run / "best.pt")]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    tuned, first = (load_checkpoint(p / "best.pt") for p in (tmp_path / "tuned", run))
    assert tuned["config"] == first["config"] and tuned["config"]["text_dropout"] == 0.3
    assert tuned["meta"]["init_from"] == str((run / "best.pt").resolve())
    for k, v in first["model"].items():
        torch.testing.assert_close(tuned["model"][k], v, rtol=0, atol=1e-6)
    assert main(["export", str(run / "best.pt"), str(tmp_path / "export")]) == 0
    assert (tmp_path / "export" / "state_dict.bin").is_file()
    assert main(["export", str(run / "best.pt"), str(tmp_path / "half"), "--half"]) == 0
    full, half = ((tmp_path / d / "state_dict.bin").stat().st_size for d in ("export", "half"))
    assert half < 0.7 * full and f"wrote {tmp_path / 'half'} (0." in capsys.readouterr().out
    assert main(["export", str(run / "best.pt"), str(tmp_path / "out.pt")]) == 2 and not (tmp_path / "out.pt").exists()
    assert "SynthGen exports to a folder" in capsys.readouterr().err
    write(tmp_path / "in" / "song.wav", tone(3.3, 22050, 2), 22050)
    for model in (str(run / "best.pt"), str(tmp_path / "export"), str(tmp_path / "half")):
        out = tmp_path / "gen" / model[-6:]
        assert main(["generate", str(tmp_path / "in"), "--model", model, "--description", "warm pad",
                     "--output", str(out), "--top-k", "10", "--remix", "--separator", str(_tiny_checkpoint(
                         tmp_path / "sep.pt"))]) == 0
        for stem in ("synth", "removed", "remixed"):
            info = sf.info(str(out / "song" / f"{stem}.wav"))
            assert (info.samplerate, info.channels, info.frames) == (22050, 2, 72765)
    assert "song.wav ->" in capsys.readouterr().out
    # a separation checkpoint is not a generator: one clear line
    assert main(["generate", str(tmp_path / "in"), "--model", str(tmp_path / "sep.pt"), "--output",
                 str(tmp_path / "x")]) == 2
    assert "not 'synthgen'" in capsys.readouterr().err


def test_evaluate_prints_the_table_and_the_worst_windows(tmp_path, capsys):
    ckpt = tmp_path / "tiny.pt"
    _tiny_checkpoint(ckpt)
    assert main(["evaluate", "--model", str(ckpt), "--source", "synthetic", "--tracks", "2", "--split", "all",
                 "--worst", "2"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:4]] == [str(ckpt), "mix", "oracle"]
    worst = out.split("worst 2 windows of " + str(ckpt) + " (SI-SDR, dB)\n")[1].splitlines()
    assert worst[0].split()[:3] == ["track", "start", "s"] and len(worst) == 3
    assert all(line.split()[0].startswith("synth") for line in worst[1:])


def _synthgen(*args, timeout=300):
    """The real ``synthgen`` command in a subprocess: ``(returncode, stdout, stderr)``."""
    proc = subprocess.run([sys.executable, "-m", "synthgen_lib.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def _refused_in_one_line(code, err, *phrases):
    """Exit 2 and one error line holding ``phrases`` (argparse's usage lines may come before it)."""
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and not lines[-1].startswith(" "), err
    assert sum("error:" in line for line in lines) == 1 and all(p in lines[-1] for p in phrases), err


def test_every_bundled_model_separates_through_the_command(tmp_path):
    import soundfile as sf

    from synthgen_lib.models import ASSETS, list_models

    example = ASSETS / "examples" / "mix" / "example.flac"
    mix, rate = sf.read(str(example), always_2d=True)
    code, out, err = _synthgen("models")
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert code == 0 and names == [name for name, *_ in list_models()] and len(names) >= 2
    runs = [(name, ()) for name in names] + [("synthlstm-demo", ("--wiener",))]
    synths = {}
    for name, extra in runs:
        folder = tmp_path / (name + "".join(extra))
        code, out, err = _synthgen("separate", example, "--model", name, "--output", folder, *extra)
        assert code == 0, err
        stems = {stem: sf.read(str(folder / "example" / f"{stem}.wav"), always_2d=True) for stem in ("synth", "residual")}
        for wav, sr in stems.values():
            assert sr == rate and wav.shape == mix.shape
        synth = stems["synth"][0]
        assert 1e-3 < (synth ** 2).mean() ** 0.5 and abs(synth - mix).max() > 1e-2  # something, not the mix
        synths[folder.name] = synth
    assert len({s.tobytes() for s in synths.values()}) == len(runs)  # each model (and Wiener) its own estimate


def test_separate_refuses_options_and_models_that_do_not_fit_in_one_line(tmp_path):
    from synthgen_lib.models import ASSETS, build_model, save_checkpoint

    from .conftest import TINY_SYNTHGEN

    example = ASSETS / "examples" / "mix" / "example.flac"
    code, _, err = _synthgen("separate", example, "--model", "synthencoder-demo", "--wiener", "--output", tmp_path / "o")
    _refused_in_one_line(code, err, "SynthEncoder has no 'wiener' option", "it takes no options")
    generator = save_checkpoint(tmp_path / "gen.pt", build_model("synthgen", dict(TINY_SYNTHGEN)))
    code, _, err = _synthgen("separate", example, "--model", generator, "--output", tmp_path / "o")
    _refused_in_one_line(code, err, f"{generator}: SynthGen writes a new synth stem", "use 'synthgen generate'")
    for segment in ("0.001", "nan", "inf", "44100"):
        code, _, err = _synthgen("separate", example, "--segment", segment, "--output", tmp_path / "o")
        _refused_in_one_line(code, err, "segment")
    assert not (tmp_path / "o").exists()  # nothing was started


def test_remix_refuses_a_matcher_as_the_separator(tmp_path):
    from synthgen_lib.models import SynthMatchConfig, build_model, save_checkpoint

    from .conftest import tone, write

    matcher = save_checkpoint(tmp_path / "match.pt", build_model("synthmatch", SynthMatchConfig(
        hidden_size=16, num_layers=1, database_size=8, database_examples=2)))
    write(tmp_path / "song.wav", tone(1.0, 16000), 16000)
    code, _, err = _synthgen("generate", tmp_path / "song.wav", "--model", "tiny", "--remix", "--separator", matcher,
                             "--output", tmp_path / "o")
    _refused_in_one_line(code, err, f"{matcher}: SynthMatch rebuilds a synth track", "cannot remove the old synth")


def test_separate_query_keeps_the_part_asked_for_and_is_refused_by_a_model_without_queries(tmp_path):
    import numpy as np
    import soundfile as sf

    from synthgen_lib.models import ASSETS, save_checkpoint

    from .conftest import query_separator

    example = ASSETS / "examples" / "mix" / "example.flac"
    code, _, err = _synthgen("separate", example, "--model", "synthencoder-demo", "--query", "warm pad",
                             "--output", tmp_path / "o")
    _refused_in_one_line(code, err, "this SynthEncoder was trained without text queries", "leave out the query")
    ckpt = save_checkpoint(tmp_path / "q.pt", query_separator())
    synths = {}
    for query in (None, "warm pad", "bright saw lead"):
        folder = tmp_path / str(query)
        code, out, err = _synthgen("separate", example, "--model", ckpt, "--output", folder,
                                   *(("--query", query) if query else ()))
        assert code == 0, err
        synths[query] = sf.read(str(folder / "example" / "synth.wav"))[0]
    assert np.abs(synths["warm pad"] - synths["bright saw lead"]).max() > 1e-3
    assert np.abs(synths["warm pad"] - synths[None]).max() > 1e-3
    code, out, _ = _synthgen("separate", example, "--model", ckpt, "--output", tmp_path / "warm pad",
                             "--query", "bright saw lead")  # another query: separated again, not skipped
    assert code == 0 and "skipped" not in out
    assert np.array_equal(sf.read(str(tmp_path / "warm pad" / "example" / "synth.wav"))[0], synths["bright saw lead"])


def test_separate_fades_a_part_the_mix_lacks_unless_told_not_to_check_roles(tmp_path):
    import soundfile as sf

    from synthgen_lib.models import ASSETS

    example = ASSETS / "examples" / "mix" / "example.flac"  # its synth is a lead
    levels = {}
    for flags in ((), ("--no-role-check",)):
        code, _, err = _synthgen("separate", example, "--query", "bright arp", "--output", tmp_path / str(len(flags)),
                                 *flags)
        assert code == 0, err
        synth, mix = sf.read(str(tmp_path / str(len(flags)) / "example" / "synth.wav"))[0], sf.read(str(example))[0]
        levels[flags] = 10 * math.log10((synth ** 2).sum() / (mix ** 2).sum())
    assert levels[()] < levels[("--no-role-check",)] - 10, levels


def test_evaluate_query_accuracy_asks_the_models_trained_with_queries(tmp_path, capsys):
    from synthgen_lib.models import save_checkpoint

    from .conftest import query_separator

    plain, asked = _tiny_checkpoint(tmp_path / "plain.pt"), save_checkpoint(tmp_path / "asked.pt", query_separator())
    assert main(["evaluate", "--model", str(plain), str(asked), "--source", "synthetic", "--tracks", "8", "--seed", "3",
                 "--split", "all", "--query-accuracy"]) == 0
    out = capsys.readouterr().out
    table = out.split("query accuracy on 1 tracks with two or more synth parts")[1].splitlines()[2:]
    assert [line.split()[1] for line in table] == ["described", "short"]
    assert all(line.startswith(str(asked)[:21]) for line in table) and "mix" in out  # the plain one: first table only
    assert main(["evaluate", "--model", str(plain), "--source", "synthetic", "--tracks", "2", "--split", "all",
                 "--query-accuracy"]) == 2
    assert "none of " + str(plain) + " was trained with text queries" in capsys.readouterr().err
