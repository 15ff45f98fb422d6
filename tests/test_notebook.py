"""notebook.py: the Generate panel, headless, with every family selected (the same calls the
button makes)."""
from __future__ import annotations

import datetime
import sys
import types
import zipfile

import numpy as np
import pytest
import soundfile as sf

from synthgen_lib.notebook import GeneratePanel

from .conftest import TINY_SYNTHGEN, tone, write


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from synthgen_lib.models import save_checkpoint
    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig

    from synthgen_lib.data.synthetic import SyntheticSource
    from synthgen_lib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("project")
    train(SyntheticSource(num_tracks=4, seed=1, track_duration=11.0), root / "runs" / "match",  # fills its database
          TrainConfig(model="synthmatch", epochs=1, steps_per_epoch=1, batch_size=2, segment=1.5, valid_segment=2.0,
                      valid_fraction=0.25),
          {"hidden_size": 16, "num_layers": 1, "database_size": 64, "database_examples": 4}, progress=False)
    save_checkpoint(root / "runs" / "gen" / "best.pt", SynthGen(SynthGenConfig(**TINY_SYNTHGEN)))
    mix = write(root / "in" / "song.wav", tone(3.0, 32000, 2, freq=220.0), 32000)
    return root, mix


def _panel(project, model: str, **boxes) -> GeneratePanel:
    root, mix = project
    panel = GeneratePanel(root, {"song": mix})
    model = str(root / "runs" / model / "best.pt") if model in ("match", "gen") else model
    assert model in [value for _, value in panel.model.options]  # offered, as a user sees it
    panel.model.value = model
    for name, value in boxes.items():
        getattr(panel, name).value = value
    panel.top_k.value = 20
    return panel


@pytest.mark.parametrize("model, boxes, stems", [  # stems: the files saved
    ("synthlstm-demo", {}, {"synth", "residual"}),
    ("synthlstm-demo", {"wiener": True}, {"synth", "residual"}),
    ("synthencoder-demo", {"wiener": True}, {"synth", "residual"}),  # the box is SynthLSTM's: ignored here
    ("match", {}, {"synth", "residual"}),
    ("gen", {}, {"mix", "synth"}),
    ("gen", {"remix": True}, {"mix", "synth", "removed", "remixed"}),
])
def test_every_family_runs_from_the_panel_and_saves_its_stems(project, capsys, model, boxes, stems):
    panel = _panel(project, model, **boxes)
    folder = panel.generate(in_panel=False)
    out = capsys.readouterr().out
    assert folder is not None and "error" not in out, out
    assert {p.stem for p in folder.glob("*.wav")} == stems
    for name in stems:
        audio, rate = sf.read(str(folder / f"{name}.wav"), always_2d=True)
        assert rate == 32000 and audio.shape == (3 * 32000, 2) and np.abs(audio).max() > 1e-4, name
        assert sf.info(str(folder / f"{name}.wav")).subtype == "PCM_24", name
    with zipfile.ZipFile(folder / "stems.zip") as z:  # "download all stems"
        assert sorted(z.namelist()) == sorted(f"{folder.name}/{n}.wav" for n in stems)
        assert z.read(f"{folder.name}/synth.wav") == (folder / "synth.wav").read_bytes()


def test_the_wiener_box_changes_what_synthlstm_returns(project):
    plain = _panel(project, "synthlstm-demo").generate(in_panel=False)
    a = sf.read(str(plain / "synth.wav"))[0]
    refined = _panel(project, "synthlstm-demo", wiener=True).generate(in_panel=False)
    b = sf.read(str(refined / "synth.wav"))[0]
    assert not np.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("quick, run_on_cpu, gpu, expect, said", [
    (False, False, True, False, ""),  # a GPU: the settings as asked, nothing said
    (False, False, False, True, "Running the QUICK settings instead of the full ones"),
    (True, False, False, True, "Running the QUICK settings (tiny"),
    (False, True, False, False, "Running the full settings on the CPU, as RUN_ON_CPU asks"),
])
def test_the_gpu_gate_runs_only_quick_settings_on_a_cpu_unless_confirmed(capsys, quick, run_on_cpu, gpu, expect,
                                                                          said):
    from synthgen_lib.notebook import gpu_gate

    assert gpu_gate(quick, run_on_cpu, gpu=gpu) is expect
    out = capsys.readouterr().out
    assert (said in out and "Runtime → Change runtime type" in out) if said else out == ""


def test_any_checkpoint_path_is_accepted_and_runs_are_named_whole(project, tmp_path):
    from synthgen_lib.models import load_model, save_checkpoint

    root, _ = project
    elsewhere = save_checkpoint(tmp_path / "drive" / "a very long folder name" / "mine.pt", load_model("synthlstm-demo"))
    panel = GeneratePanel(root, {"x": "x.wav"}, model=str(elsewhere))  # not under runs/: a TraitError before
    assert panel.model.value == str(elsewhere)
    labels = dict((value, label) for label, value in panel.model.options)
    assert labels[str(root / "runs" / "gen" / "best.pt")] == "run gen (best.pt)"


@pytest.mark.parametrize("model, wiener, knobs", [
    ("synthlstm-demo", True, False), ("synthencoder-demo", False, False), ("match", False, False), ("gen", False, True)])
def test_only_the_selected_familys_controls_are_shown(project, model, wiener, knobs):
    panel = _panel(project, "synthlstm-demo")
    panel.model.value = str(project[0] / "runs" / model / "best.pt") if model in ("match", "gen") else model
    assert (panel.wiener.layout.display != "none") is wiener
    assert (panel.knobs.layout.display != "none") is knobs


def test_a_separator_with_queries_shows_the_part_box_and_keeps_the_part_asked_for(project, tmp_path):
    from synthgen_lib.models import save_checkpoint

    from .conftest import query_separator

    root, _ = project
    ckpt = save_checkpoint(root / "runs" / "queries" / "best.pt", query_separator())
    panel = _panel(project, "synthencoder-demo")
    assert panel.query.layout.display == "none"  # trained without queries: no box, and only that box hidden
    assert all(box.layout.display != "none" for box in (panel.source, panel.path, panel.model))
    panel.model.value = str(ckpt)
    assert panel.query.layout.display != "none" and panel.wiener.layout.display != "none"
    every = sf.read(str(panel.generate(in_panel=False) / "synth.wav"))[0]
    panel.query.value = "warm pad"
    folder = panel.generate(in_panel=False)
    assert folder.name == "song-queries-warm-pad"
    assert not np.allclose(sf.read(str(folder / "synth.wav"))[0], every, atol=1e-4)
    panel.query.value = "  "  # blank: every synth part, as without the box
    assert np.array_equal(sf.read(str(panel.generate(in_panel=False) / "synth.wav"))[0], every)


def test_the_part_box_has_a_role_check_switch(project):
    from synthgen_lib.audio import load_audio
    from synthgen_lib.separate import separate

    panel = _panel(project, "synthencoder-demo")
    assert panel.role_check.layout.display == "none"  # no queries, no switch
    panel.model.value = "synthlstm-demo"
    assert panel.role_check.layout.display != "none" and panel.role_check.value
    panel.query.value = "bright arp"
    checked = panel.generate(in_panel=False)
    panel.role_check.value = False
    plain = panel.generate(in_panel=False)
    assert (checked.name, plain.name) == ("song-synthlstm-demo-bright-arp", "song-synthlstm-demo-bright-arp-no-role-check")
    mix = load_audio(project[1], 32000)
    synths = []
    for folder, check in ((checked, True), (plain, False)):
        expected = separate(mix, "synthlstm-demo", 32000, query="bright arp", role_check=check).synth
        synths.append(sf.read(str(folder / "synth.wav"))[0].T)
        assert np.allclose(synths[-1], expected.numpy(), atol=1e-4)
    assert not np.allclose(synths[0], synths[1], atol=1e-4)  # a tone is no arp: the check fades it


def test_the_button_is_disabled_while_running_and_progress_moves(project):
    panel = _panel(project, "synthlstm-demo")
    seen = []
    say = panel._say
    panel._say = lambda text, fraction=None: (seen.append((panel.button.disabled, panel.progress.value, text)),
                                              say(text, fraction))
    folder = panel.generate()
    assert folder is not None and all(disabled for disabled, _, _ in seen)
    assert any(" of " in text and "separating 3 s of song" in text for _, _, text in seen)  # per-segment progress
    assert [p for _, p, _ in seen] == sorted(p for _, p, _ in seen) and panel.progress.value == 1.0
    assert not panel.button.disabled and panel.button.description == "Generate"
    assert panel.progress.layout.visibility == "hidden" and "done in" in panel.status.value


def test_any_error_is_one_line_in_the_panel_and_the_button_comes_back(project, monkeypatch):
    panel = _panel(project, "synthlstm-demo")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory\nTried to allocate 2.00 GiB")

    monkeypatch.setattr("synthgen_lib.separate.separate", broken)
    assert panel.generate() is None
    assert panel.status.value.count("error: RuntimeError: CUDA out of memory") == 1
    assert "Tried to allocate" not in panel.status.value
    assert panel.output.outputs[-1]["text"] == "error: RuntimeError: CUDA out of memory\n"
    assert not panel.button.disabled


def test_results_get_their_own_folders_and_scores_beside_the_mixs(project):
    root, mix = project
    reference = write(root / "in" / "ref.wav", tone(3.0, 32000, 2, freq=220.0, amp=0.3), 32000)
    panel = GeneratePanel(root, {"song": mix}, {"song": reference}, model="synthlstm-demo")
    first = panel.generate()
    written = (first / "synth.wav").stat().st_mtime_ns
    second = panel.generate()
    assert first != second and (first / "synth.wav").stat().st_mtime_ns == written  # the first one is kept
    assert first.name.startswith("song-synthlstm-demo") and second.name.startswith("song-synthlstm-demo-")
    html = panel.output.outputs[0]["data"]["text/html"]
    assert "mix — SI-SDR" in html and "dB over the mix)" in html
    gen = _panel(project, "gen")
    gen.seed.value, gen.description.value = 7, "Warm pad, slow attack!"
    assert gen.generate().name.endswith("-seed7-warm-pad-slow-attack")


def test_players_hold_compressed_previews(project):
    panel = _panel(project, "synthlstm-demo")
    panel.generate()
    html = panel.output.outputs[0]["data"]["text/html"]
    assert html.count("data:audio/mpeg;base64,") == 3 and "audio/wav" not in html  # mix, synth, residual
    wav_size = 3 * 32000 * 2 * 2 * 3 * 4 / 3  # three 16-bit stereo WAVs of 3 s, base64
    assert len(html) < wav_size / 3


@pytest.fixture
def colab(monkeypatch):
    """A stand-in ``google.colab`` whose upload dialog returns one file and whose downloads are
    recorded."""
    files = types.SimpleNamespace(downloaded=[])
    files.download = files.downloaded.append
    module = types.ModuleType("google.colab")
    module.files = files
    google = sys.modules.get("google") or types.ModuleType("google")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", module)
    return files


def test_on_colab_uploads_use_colabs_dialog_and_the_zip_is_downloaded(project, colab):
    from synthgen_lib.notebook import upload_audio

    root, mix = project
    colab.upload = lambda: {"my song.wav": mix.read_bytes()}
    inputs = upload_audio(root)
    assert inputs == {"my song": root / "uploads" / "my song.wav"}
    assert inputs["my song"].read_bytes() == mix.read_bytes()
    panel = GeneratePanel(root, inputs, model="synthlstm-demo")
    assert panel.upload.layout.display == "none"  # the widget upload fails on Colab above about 1 MB
    folder = panel.generate()
    assert colab.downloaded == [] and panel.download.layout.display == ""  # tens of MB: only when asked
    panel.download.click()
    assert colab.downloaded == [str(folder / "stems.zip")]

    def blocked(path):
        raise RuntimeError("the browser blocked the download")

    colab.download = blocked
    panel.download.click()
    assert "error: the download did not start (RuntimeError" in panel.status.value and str(folder) in panel.status.value


def test_an_upload_is_used_once_then_the_menu_again(project):
    root, mix = project
    panel = _panel(project, "synthlstm-demo")
    panel.upload.value = ({"name": "up.wav", "content": memoryview(mix.read_bytes()), "type": "audio/wav",
                           "size": mix.stat().st_size,
                           "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert panel.generate().name.startswith("up-")
    assert panel.upload.value == () and panel.source.label == "up"  # kept in the menu, selected
    panel.source.value = mix
    assert panel.generate().name.startswith("song-")


def test_quick_generates_only_the_start_of_a_long_input(project):
    root, _ = project
    long_mix = write(root / "in" / "long.wav", tone(5.0, 32000, 1, freq=220.0), 32000)
    panel = _panel(project, "gen")
    panel.source.options = [("long", str(long_mix))]
    panel.quick, panel.QUICK_SECONDS = True, 2.0  # the notebook's is 30 s
    folder = panel.generate()
    assert sf.info(str(folder / "synth.wav")).frames == 2 * 32000
    assert "QUICK: the first 2 s only" in panel.output.outputs[0]["data"]["text/html"]
    separator = _panel(project, "synthlstm-demo")  # separation is fast on a CPU: never cut
    separator.source.options = [("long", str(long_mix))]
    separator.quick, separator.QUICK_SECONDS = True, 2.0
    assert sf.info(str(separator.generate() / "synth.wav")).frames == 5 * 32000


def test_library_errors_in_a_notebook_are_one_line_naming_the_notebook_setting(capfd):
    from IPython.core.interactiveshell import InteractiveShell

    from synthgen_lib.notebook import one_line_errors

    shell = InteractiveShell.instance()
    try:
        one_line_errors(shell)
        result = shell.run_cell("from synthgen_lib import prepare\nprepare('folder', None)")
        err = capfd.readouterr().err
        assert result.error_in_exec is not None  # the cell failed: Run all stops there
        assert err.strip() == "error: the 'folder' source needs a dataset folder (ROOT)"
        from synthgen_lib.data.musdb_source import GET_IT
        from synthgen_lib.notebook import notebook_message

        hint = notebook_message(GET_IT)  # the CLI's download commands become the Encode notebook's field
        assert "GET_DATA = 'musdb-sample' (Encode notebook)" in hint and "synthgen download" not in hint
        assert "Traceback" not in err and "--root" not in err
        shell.run_cell("raise ValueError('a bug of ours')")  # anything else keeps its traceback
        shown = capfd.readouterr()
        assert "Traceback" in shown.out and "ValueError" in shown.out and shown.out.count("\n") > 3
    finally:
        InteractiveShell.clear_instance()


@pytest.fixture
def served(tmp_path):
    """A 127.0.0.1 server for the files of ``tmp_path / "www"``."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_setup_downloads_a_shared_checkpoint_or_unpacks_a_shared_dataset(tmp_path, served, capsys):
    from synthgen_lib.notebook import CellStop, get_shared

    www, base = served
    (www / "model.pt").write_bytes(b"weights")
    with zipfile.ZipFile(www / "stems.zip", "w") as z:
        z.writestr("stems/mix/a.wav", b"x")
        z.writestr("stems/synth/a.wav", b"y")
    project = tmp_path / "project"
    assert get_shared(f"{base}/model.pt", project, "mine.pt").read_bytes() == b"weights"
    root = get_shared(f"{base}/stems.zip", project, "stems.zip")
    assert root == project / "downloads" / "stems" and (root / "synth" / "a.wav").read_bytes() == b"y"
    assert f"SOURCE = 'folder', ROOT = '{root}'" in capsys.readouterr().out
    with pytest.raises(CellStop, match=r"gone.pt: not found \(HTTP 404\)"):
        get_shared(f"{base}/gone.pt", project, "gone.pt")
    assert get_shared("", project, "x.pt") is None
