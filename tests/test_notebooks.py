"""Execute the four notebooks top to bottom with their quick parameters (papermill + nbclient).

They run in order on one project folder, as a user would: Setup, Encode Dataset, Train,
Generate. A failure names the notebook and the failing cell.
"""
from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = ["01_setup.ipynb", "02_encode_dataset.ipynb", "03_train.ipynb", "04_generate.ipynb"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("colab")
    project = root / "SynthGen"
    results = {}
    runs = [(name, name, {"AUTO_RUN": True} if "generate" in name else {}) for name in ORDER]
    # then SynthGen: train on the tokens the Encode notebook wrote, generate with the result
    runs += [("03_train_synthgen", "03_train.ipynb", {"MODEL": "synthgen", "RUN": "synthgen"}),
             ("04_generate_synthgen", "04_generate.ipynb",
              {"AUTO_RUN": True, "MODEL": str(project / "runs" / "synthgen" / "best.pt")}),
             # and the sampled source (FluidSynth + the installed GM SoundFont) into its own dataset
             ("02_encode_sampled", "02_encode_dataset.ipynb", {"SOURCE": "sampled", "DATASET": "sampled4"}),
             # and real pieces of the music21 corpus
             ("02_encode_scores", "02_encode_dataset.ipynb", {"SOURCE": "scores", "DATASET": "scores4"})]
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
                source = "".join(cell["source"])
                assert len(source.splitlines()) <= 20 and "\ndef " not in "\n" + source, (name, source[:80])
        kinds = [c["cell_type"] for c in nb["cells"]]
        assert all(a == "markdown" for a, b in zip(kinds, kinds[1:]) if b == "code" and a != "code"), name


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
    assert "excluded (never read) (" in text and len(RESERVED.read_text().split()) > 50
    assert " playing the " in (dataset / "description" / f"{names[0]}.txt").read_text()


def test_train_saves_checkpoints_and_plots(executed):
    project, results = executed
    run = project / "runs" / "lstm"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    nb = results["03_train.ipynb"]
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb))
    assert "oracle" in _text(nb) and "6 steps" in _text(nb)


def test_generate_plays_and_saves_stems(executed):
    project, results = executed
    text = _text(results["04_generate.ipynb"])
    assert text.count("<audio") == 4 and "SI-SDR" in text  # mix, synth, residual, reference
    assert "data-duration='20.000'" in text
    folder = next((project / "generated").iterdir())
    assert (folder / "synth.wav").is_file() and (folder / "residual.wav").is_file()


def test_synthgen_trains_on_the_tokens_and_generates(executed):
    project, results = executed
    assert (project / "runs" / "synthgen" / "best.pt").is_file()
    text = _text(results["03_train_synthgen"])
    assert "6 steps" in text and "true mix" in text and "shuffled mix" in text
    text = _text(results["04_generate_synthgen"])
    assert text.count("<audio") == 2 and "bright detuned saw lead" in text  # mix + generated synth
    assert "closest training descriptions:" in text  # from the run's checkpoint, matched offline
    assert "data-duration='20.000'" in text
    folder = project / "generated" / "bundled example-synthgen"
    assert (folder / "synth.wav").is_file() and (folder / "mix.wav").is_file()
