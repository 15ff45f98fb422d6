"""Execute the four notebooks top to bottom with their quick parameters (papermill + nbclient).

They run in order on one project folder, as a user would: Setup, Encode Dataset, Train,
Generate. A failure names the notebook and the failing cell.
"""
from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
import torch

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = ["01_setup.ipynb", "02_encode_dataset.ipynb", "03_train.ipynb", "04_generate.ipynb"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("colab")
    project = root / "SynthGen"
    results = {}
    # Encode and Train run with the full settings asked for: without a GPU the gate turns them quick
    full = {"02_encode_dataset.ipynb": {"QUICK": False}, "03_train.ipynb": {"QUICK": False},
            "04_generate.ipynb": {"AUTO_RUN": True}}
    runs = [(name, name, full.get(name, {})) for name in ORDER]
    # then SynthGen: train on the tokens the Encode notebook wrote, generate with the result
    runs += [("03_train_synthgen", "03_train.ipynb", {"MODEL": "synthgen", "RUN": "synthgen"}),
             ("04_generate_synthgen", "04_generate.ipynb",
              {"AUTO_RUN": True, "MODEL": str(project / "runs" / "synthgen" / "best.pt")}),
             # and a SynthLSTM with text queries, asked for one part in the Generate panel
             ("03_train_queries", "03_train.ipynb", {"QUERIES": True, "RUN": "lstm-queries"}),
             ("04_generate_queries", "04_generate.ipynb",
              {"AUTO_RUN": True, "MODEL": str(project / "runs" / "lstm-queries" / "best.pt"), "PART": "warm pad"}),
             # and the sampled source (FluidSynth + the installed GM SoundFont) into its own dataset
             ("02_encode_sampled", "02_encode_dataset.ipynb", {"SOURCE": "sampled", "DATASET": "sampled4"}),
             # and real pieces of the music21 corpus, arranged as electronic productions
             ("02_encode_scores", "02_encode_dataset.ipynb",
              {"SOURCE": "scores", "DATASET": "scores4", "ARRANGEMENT": "electronic", "SYNTH_VOICES": "all"})]
    for key, name, extra in runs:
        out = root / f"executed_{key}.ipynb"
        try:
            papermill.execute_notebook(str(NOTEBOOKS / name), str(out), cwd=str(root), kernel_name="python3",
                                       progress_bar=False, parameters={"QUICK": True, "LOCAL_ROOT": str(root),
                                                                       "USE_DRIVE": False, **extra})
        except papermill.PapermillExecutionError as exc:
            pytest.fail(f"{key}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}")
        results[key if key != name else name] = json.loads(out.read_text())
    return project, results


def _outputs(nb: dict) -> list[dict]:
    return [o for cell in nb["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]


def _text(nb: dict) -> str:
    parts = []
    for o in _outputs(nb):
        parts.append("".join(o.get("text", "")))
        for key in ("text/plain", "text/html"):
            parts.append("".join(o.get("data", {}).get(key, "")))
    return "\n".join(parts)


def test_no_cell_errors_and_thin_cells(executed):
    _, results = executed
    for name, nb in results.items():
        assert not [o for o in _outputs(nb) if o.get("output_type") == "error"], name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])  # Colab form fields are settings, not code: not counted
                code = [line for line in source.splitlines() if "#@param" not in line]
                assert len(code) <= 20 and "\ndef " not in "\n" + source, (name, source[:80])
        kinds = [c["cell_type"] for c in nb["cells"]]
        assert all(a == "markdown" for a, b in zip(kinds, kinds[1:]) if b == "code" and a != "code"), name


def test_committed_notebooks_are_what_build_py_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", NOTEBOOKS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.main(tmp_path)
    for name in ORDER:
        assert (tmp_path / name).read_text() == (NOTEBOOKS / name).read_text(), \
            f"{name} differs from what notebooks/build.py writes: run python notebooks/build.py"
    assert set(build.NOTEBOOKS) == set(ORDER)


@pytest.fixture
def colab_kernel(tmp_path, monkeypatch):
    """Kernels started from now on hold a stand-in ``google.colab`` module, as Colab's do."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_install_cell_runs_the_installer_of_a_copy_on_drive(tmp_path, colab_kernel, form):
    """REPO_URL may name a copy of the repository on Drive (GitHub's zip wraps it in a folder):
    the cell finds the installer inside and hands it the copy (here an installer that only
    says what it was given, so this environment is not reinstalled)."""
    import zipfile

    copy = tmp_path / "drive" / "synthgen-main"
    (copy / "synthgen_lib").mkdir(parents=True)
    (copy / "synthgen_lib" / "colab_install.py").write_text(
        "def install(source, ref, target):\n    return f'fake install of {source} ref={ref!r} into {target}'\n")
    source = copy
    if form == "zip":
        source = tmp_path / "drive" / "synthgen.zip"
        with zipfile.ZipFile(source, "w") as z:
            z.write(copy / "synthgen_lib" / "colab_install.py", "synthgen-main/synthgen_lib/colab_install.py")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "01_setup.ipynb"), str(out), cwd=str(tmp_path), kernel_name="python3",
                               progress_bar=False, parameters={"REPO_URL": str(source), "REPO_REF": "v1",
                                                               "LOCAL_ROOT": str(tmp_path), "USE_DRIVE": False})
    unpacked = "synthgen-source/synthgen-main" if form == "zip" else copy  # the zip is unpacked beside it
    assert f"fake install of {unpacked} ref='v1' into synthgen" in _text(json.loads(out.read_text()))


def test_install_cell_stops_in_one_line_when_the_clone_fails(tmp_path, colab_kernel):
    """On (a stand-in for) Colab, a REPO_URL that cannot be cloned stops Run all at the install
    cell with one line, before any pip call; nothing after it runs."""
    out = tmp_path / "out.ipynb"
    bad = str(tmp_path / "no-such-repo.git")
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(str(NOTEBOOKS / "01_setup.ipynb"), str(out), cwd=str(tmp_path),
                                   kernel_name="python3", progress_bar=False,
                                   parameters={"REPO_URL": bad, "LOCAL_ROOT": str(tmp_path), "USE_DRIVE": False})
    assert failed.value.ename == "SystemExit"
    message = failed.value.evalue
    assert message.startswith(f"install stopped: git could not clone {bad} (") and "\n" not in message
    assert "REPO_URL" in message and not (tmp_path / "synthgen").exists()
    shown = json.dumps(json.loads(out.read_text())["cells"])
    assert "To exit: use" not in shown  # IPython's advice to quit is not shown beside the line
    cells = json.loads(out.read_text())["cells"]
    ran = [c for c in cells if c["cell_type"] == "code" and c.get("execution_count")]
    assert "google.colab" in "".join(ran[-1]["source"])  # the install cell was the last one to run
    assert not (tmp_path / "SynthGen").exists()  # the project cell never ran


@pytest.fixture
def archive_server(tmp_path):
    """A local HTTP server (127.0.0.1 only) serving a .tar.gz of a small mix/synth/description
    dataset, as a user would share one; records the paths asked for."""
    import http.server
    import io
    import tarfile
    import threading

    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        rng = np.random.default_rng(0)
        for i in range(3):
            synth = 0.3 * np.sin(2 * np.pi * 330 * (i + 1) * np.arange(12 * 16000) / 16000)
            for kind, audio in (("synth", synth), ("mix", synth + 0.1 * rng.standard_normal(synth.shape))):
                data = io.BytesIO()
                sf.write(data, audio.astype(np.float32), 16000, format="WAV")
                info = tarfile.TarInfo(f"my-songs/{kind}/song{i}.wav")
                info.size = len(data.getvalue())
                tar.addfile(info, io.BytesIO(data.getvalue()))
    body, asked = buffer.getvalue(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            asked.append(self.path)
            if self.path != "/my-songs.tar.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


def test_encode_downloads_a_dataset_archive_and_prepares_it(tmp_path, archive_server):
    base, asked = archive_server
    params = {"QUICK": True, "LOCAL_ROOT": str(tmp_path), "USE_DRIVE": False, "DATASET": "mine",
              "GET_DATA": "link", "GET_LINK": f"{base}/my-songs.tar.gz"}
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "02_encode_dataset.ipynb"), str(out), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False, parameters={**params, "SYNTHGEN": "none"})
    project = tmp_path / "SynthGen"
    import hashlib

    name = "my-songs-" + hashlib.sha1(f"{base}/my-songs.tar.gz".encode()).hexdigest()[:6]
    root = project / "downloads" / name
    assert sorted(p.name for p in (root / "mix").iterdir()) == ["song0.wav", "song1.wav", "song2.wav"]
    text = _text(json.loads(out.read_text()))
    assert f"the next cells use SOURCE = 'folder', ROOT = '{root}', DATASET = '{name}'" in text
    assert "source: folder — 3 tracks" in text  # prepare read the download, not the synthetic default
    assert len(list((project / "datasets" / name / "mix").glob("*.wav"))) == 3
    assert not (project / "datasets" / "mine").exists()  # never mixed into the dataset named in the form
    papermill.execute_notebook(str(NOTEBOOKS / "02_encode_dataset.ipynb"), str(out), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False, parameters={**params, "SYNTHGEN": "none"})
    assert asked == ["/my-songs.tar.gz"]  # the rerun used what was there
    params["GET_LINK"] = f"{base}/gone.tar.gz"
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(str(NOTEBOOKS / "02_encode_dataset.ipynb"), str(out), cwd=str(tmp_path),
                                   kernel_name="python3", progress_bar=False, parameters=params)
    assert failed.value.exec_count is not None  # Run all stopped at the download cell
    streams = [o for cell in json.loads(out.read_text())["cells"] for o in cell.get("outputs", [])
               if o.get("output_type") == "stream" and "not found (HTTP 404)" in "".join(o["text"])]
    line = "".join(streams[0]["text"]).strip()
    assert line.startswith("error: ") and "gone.tar.gz" in line and "\n" not in line  # one line, no traceback
    assert not [o for cell in json.loads(out.read_text())["cells"] for o in cell.get("outputs", [])
                if o.get("output_type") == "error" and o.get("traceback")]


def test_without_a_gpu_only_the_quick_settings_run(executed):
    project, results = executed
    for name in ("02_encode_dataset.ipynb", "03_train.ipynb"):  # asked for QUICK=False
        text = _text(results[name])
        assert "No GPU on this runtime" in text and "Runtime → Change runtime type" in text, name
        assert "Running the QUICK settings instead of the full ones" in text and "RUN_ON_CPU" in text, name
    assert "6 steps" in _text(results["03_train.ipynb"])  # 2 epochs x 3 steps: the quick settings ran


def test_setup_reports_the_machine(executed):
    project, results = executed
    text = _text(results["01_setup.ipynb"])
    assert f"project folder: {project}" in text and "torch" in text and "CPU:" in text


def test_encode_writes_the_dataset_and_shows_players(executed):
    project, results = executed
    dataset = project / "datasets" / "synth64"
    assert len(list((dataset / "mix").glob("*.wav"))) == 4 and (dataset / "prepare.json").is_file()
    text = _text(results["02_encode_dataset.ipynb"])
    assert "source: synthetic — 4 tracks" in text and text.count("<audio") == 2  # 1 valid window: mix + synth
    assert "x realtime" in text and (project / "codes" / "synth64-tiny" / "manifest.json").is_file()


def test_encode_renders_the_sampled_source(executed):
    project, results = executed
    dataset = project / "datasets" / "sampled4"
    names = sorted(f.stem for f in (dataset / "mix").glob("*.wav"))
    assert names == [f"sampled_s0_{i:05d}" for i in range(4)]
    text = _text(results["02_encode_sampled"])
    assert "source: sampled — 4 tracks" in text and text.count("<audio") == 2
    assert " playing the " in (dataset / "description" / f"{names[0]}.txt").read_text()


def test_encode_renders_real_pieces_from_the_music21_corpus(executed):
    from synthgen_lib.data.scores import RESERVED

    project, results = executed
    dataset = project / "datasets" / "scores4"
    names = sorted(f.stem for f in (dataset / "mix").glob("*.wav"))
    assert len(names) == 4 and all(n.startswith("scores_s0_") for n in names)
    text = _text(results["02_encode_scores"])
    assert "source: scores — 4 tracks" in text and text.count("<audio") == 4  # mix and synth of two windows
    import re

    shown = re.findall(r"<h2>(scores_s0_\S+) from ", text)
    assert len(shown) == 2 and len(set(shown)) == 2, shown  # two different tracks, not one twice
    assert "excluded (never read) (" in text and len(RESERVED.read_text().split()) > 50
    assert " playing the " in (dataset / "description" / f"{names[0]}.txt").read_text()
    from synthgen_lib.data.scores import ScoresSource  # ARRANGEMENT and SYNTH_VOICES reached the source

    same = ScoresSource("music21", num_tracks=4, seed=0, track_duration=11.0, arrangement="electronic",
                        synth_voices="all")
    assert [(dataset / "description" / f"{t.name}.txt").read_text().strip() for t in same.tracks()] == \
        [t.description for t in same.tracks()]


def test_train_saves_checkpoints_and_plots(executed):
    project, results = executed
    run = project / "runs" / "lstm"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    nb = results["03_train.ipynb"]
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb))
    assert "oracle" in _text(nb) and "6 steps" in _text(nb)


def test_train_with_queries_and_ask_the_panel_for_one_part(executed):
    from synthgen_lib.models import load_checkpoint, load_model

    project, results = executed
    best = project / "runs" / "lstm-queries" / "best.pt"
    assert load_checkpoint(best)["config"]["queries"] is True
    text = _text(results["03_train_queries"])
    assert "query accuracy on" in text or "no validation track has two or more synth parts" in text
    folder = project / "generated" / "bundled-example-lstm-queries-warm-pad"
    assert (folder / "synth.wav").is_file(), sorted(p.name for p in (project / "generated").iterdir())
    from synthgen_lib.audio import SAMPLE_RATE, load_audio
    from synthgen_lib.demo import EXAMPLE_DIR
    from synthgen_lib.evaluate import si_sdr
    from synthgen_lib.separate import separate

    mix = load_audio(EXAMPLE_DIR / "mix" / "example.flac", SAMPLE_RATE, 2)
    model = load_model(best)
    asked, every = (separate(mix, model, SAMPLE_RATE, query=q).synth for q in ("warm pad", None))
    saved = load_audio(folder / "synth.wav", SAMPLE_RATE, 2)[:, :asked.shape[-1]]
    assert float(si_sdr(saved.flatten(), asked.flatten())) > 40  # the panel asked for the part
    assert not torch.equal(asked, every)  # the query layers were trained


def test_generate_plays_and_saves_stems(executed):
    project, results = executed
    text = _text(results["04_generate.ipynb"])
    assert text.count("<audio") == 4 and "SI-SDR" in text  # mix, synth, residual, reference
    assert "data-duration='20.000'" in text
    folder = project / "generated" / "bundled-example-synthlstm-demo"
    assert (folder / "synth.wav").is_file() and (folder / "residual.wav").is_file()
    assert "mix — SI-SDR" in text and "over the mix" in text and "data:audio/mpeg" in text


def test_synthgen_trains_on_the_tokens_and_generates(executed):
    project, results = executed
    assert (project / "runs" / "synthgen" / "best.pt").is_file()
    text = _text(results["03_train_synthgen"])
    assert "6 steps" in text and "true mix" in text and "shuffled mix" in text
    text = _text(results["04_generate_synthgen"])
    assert text.count("<audio") == 2 and "bright detuned saw lead" in text  # mix + generated synth
    assert "closest training descriptions:" in text  # from the run's checkpoint, matched offline
    assert "data-duration='20.000'" in text
    folder = project / "generated" / "bundled-example-synthgen-seed0-bright-detuned-saw-lead"
    assert (folder / "synth.wav").is_file() and (folder / "mix.wav").is_file() and (folder / "stems.zip").is_file()
