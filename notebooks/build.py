"""Write the four Colab notebooks from the cell lists below: ``python notebooks/build.py``.

Keeping the notebooks as short cell lists here makes them reviewable and keeps their shared
steps (install, project folder) identical. Each notebook has a ``parameters`` cell (Colab
forms; papermill injects the quick settings in the tests).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

INSTALL = '''# On Colab: fetch SynthGen and install it next to Colab's own torch (about 2 minutes).
# Elsewhere (plain Jupyter, the tests) SynthGen is already installed and this does nothing.
import sys
if "google.colab" in sys.modules:
    !test -d synthgen || git clone -q --depth 1 {REPO_URL} synthgen
    %pip install -q -r synthgen/requirements.txt
    %pip install -q --no-deps -r synthgen/requirements-nodeps.txt
    %pip install -q --no-deps -e synthgen
    sys.path.insert(0, "synthgen")'''

PROJECT = '''from synthgen_lib.notebook import project_folder
project = project_folder(PROJECT, USE_DRIVE, LOCAL_ROOT)
print("project folder:", project)'''

COMMON_PARAMS = '''PROJECT = "SynthGen"  #@param {type:"string"}
USE_DRIVE = True  #@param {type:"boolean"}
REPO_URL = "https://github.com/synthgen/synthgen"  #@param {type:"string"}
LOCAL_ROOT = "."  # where the project folder goes outside Colab
QUICK = False  #@param {type:"boolean"}'''


def md(text: str):
    return nbformat.v4.new_markdown_cell(text)


def code(text: str, tags: list[str] | None = None):
    cell = nbformat.v4.new_code_cell(text)
    if tags:
        cell.metadata["tags"] = tags
    return cell


NOTEBOOKS = {
    "01_setup.ipynb": [
        md("# SynthGen — 1. Setup\nInstalls SynthGen, picks the project folder (Google Drive on Colab, so "
           "datasets and checkpoints survive a disconnect), reports the machine, and optionally downloads a "
           "shared checkpoint or dataset from Google Drive. Run the cells top to bottom; about 3 minutes on Colab."),
        code(COMMON_PARAMS + '''
SHARED_FILE = ""  #@param {type:"string"}
SHARED_NAME = "shared_model.pt"  #@param {type:"string"}
SHARED_SHA256 = ""  #@param {type:"string"}''', tags=["parameters"]),
        md("## Install\nOn Colab this clones the repository and installs SynthGen without replacing Colab's "
           "torch (about 2 minutes). Elsewhere it does nothing."),
        code(INSTALL),
        md("## Project folder and machine\nMounts Google Drive on Colab (you will be asked to allow it) and "
           "shows the GPU, versions and free memory. Instant."),
        code(PROJECT + '''
from synthgen_lib.notebook import environment_report
print(environment_report())'''),
        md("## Optional: download a shared checkpoint or dataset\nPaste a Google Drive link or file id into "
           "`SHARED_FILE` (and its SHA-256 if the author published one). The file is used only when it arrived "
           "complete and matches the checksum. Seconds to minutes, depending on size."),
        code('''from synthgen_lib.download import fetch
from synthgen_lib.errors import SynthGenError
if SHARED_FILE:
    try:
        print("downloaded", fetch(SHARED_FILE, project / "shared" / SHARED_NAME, SHARED_SHA256 or None))
    except SynthGenError as error:
        print("error:", error)
else:
    print("nothing to download (SHARED_FILE is empty)")'''),
    ],
    "02_encode_dataset.ipynb": [
        md("# SynthGen — 2. Encode Dataset\nChooses a data source, cuts it into training windows, writes it to "
           "the project folder in the `mix/`, `synth/`, `description/` layout at 32 kHz, and shows statistics "
           "and a few examples. SynthLSTM and SynthEncoder train on this audio directly."),
        code(COMMON_PARAMS + '''
SOURCE = "synthetic"  #@param ["synthetic", "folder", "musdb", "slakh"]
ROOT = ""  #@param {type:"string"}
DATASET = "synth64"  #@param {type:"string"}
TRACKS = 64  #@param {type:"integer"}
TRACK_DURATION = 30.0  #@param {type:"number"}
WINDOW = 10.0  #@param {type:"number"}
HOP = 5.0  #@param {type:"number"}''', tags=["parameters"]),
        code('''if QUICK:  # a tiny dataset that renders in seconds on a CPU
    TRACKS, TRACK_DURATION = 4, 11.0'''),
        md("## Install and project folder\nSame as the Setup notebook (instant when already done)."),
        code(INSTALL),
        code(PROJECT),
        md("## Write the dataset\nThe synthetic set renders at about 25x realtime on one CPU core (64 tracks of 30 s: "
           "about 1.5 minutes); other sources are converted. Interrupted? Run it again: finished tracks are kept."),
        code('''from synthgen_lib import prepare
dataset = project / "datasets" / DATASET
report = prepare(SOURCE, ROOT or None, dataset, num_tracks=TRACKS, track_duration=TRACK_DURATION,
                 window=WINDOW, hop=HOP)
print(report.format())'''),
        md("## Listen to a few windows\nMix and synth of the first validation windows, with spectrograms."),
        code('''from synthgen_lib.data import FolderSource, make_windows
from synthgen_lib.display import comparison_html
from synthgen_lib.notebook import show
source = FolderSource(dataset)
for window in make_windows(source.tracks(), WINDOW, HOP).of("valid")[:2]:
    audio = source.load(window.track, 32000, 2, window.start, window.length)
    show(comparison_html({"mix": audio.mix, "synth": audio.synth}, 32000,
                         title=f"{window.track} from {window.start:g} s — {audio.description}"))'''),
    ],
    "03_train.ipynb": [
        md("# SynthGen — 3. Train\nTrains a model family on the dataset from the Encode notebook. The loss plot "
           "redraws after every epoch; `best.pt` (lowest validation loss) and `last.pt` are saved in the project "
           "folder. After a Colab disconnect, run the notebook again: training resumes from `last.pt`."),
        code(COMMON_PARAMS + '''
DATASET = "synth64"  #@param {type:"string"}
MODEL = "lstm"  #@param ["lstm", "encoder"]
RUN = "lstm"  #@param {type:"string"}
EPOCHS = 40  #@param {type:"integer"}
STEPS_PER_EPOCH = 100  #@param {type:"integer"}
BATCH_SIZE = 8  #@param {type:"integer"}
SEGMENT = 4.0  #@param {type:"number"}
LEARNING_RATE = 0.001  #@param {type:"number"}
MODEL_CONFIG = {}''', tags=["parameters"]),
        code('''if QUICK:  # a tiny model and a few steps: runs in seconds on a CPU
    EPOCHS, STEPS_PER_EPOCH, BATCH_SIZE, SEGMENT = 2, 3, 2, 1.0
    MODEL_CONFIG = {"lstm": {"hidden_size": 32, "num_layers": 1, "n_mels": 32},
                    "encoder": {"channels": 8, "depth": 3, "lstm_layers": 1}}[MODEL]'''),
        md("## Install and project folder\nSame as the Setup notebook."),
        code(INSTALL),
        code(PROJECT),
        md("## Train\nOn a T4 GPU an epoch of the default settings takes well under a minute; on a CPU about 2 "
           "minutes (SynthLSTM). Mixed precision switches on by itself on a GPU."),
        code('''from synthgen_lib.notebook import LossPlot
from synthgen_lib.train import TrainConfig, train
run = project / "runs" / RUN
config = TrainConfig(model=MODEL, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, batch_size=BATCH_SIZE,
                     segment=SEGMENT, lr=LEARNING_RATE)
plot = LossPlot(run / "metrics.jsonl")
result = train(project / "datasets" / DATASET, run, config, MODEL_CONFIG, on_epoch=plot.update)
print(f"{result.step} steps; best validation loss {result.best_valid_loss:.4f}; best checkpoint {result.best}")'''),
        md("## Evaluate\nSI-SDR of the best checkpoint on the validation tracks, next to the mix itself and the "
           "oracle ratio mask. About a second per track on a GPU."),
        code('''from synthgen_lib.data import FolderSource
from synthgen_lib.evaluate import evaluate
report = evaluate({RUN: result.best}, FolderSource(project / "datasets" / DATASET))
print(report.format())'''),
    ],
    "04_generate.ipynb": [
        md("# SynthGen — 4. Generate\nPick an input (a dataset example, a path, or an upload) and a model "
           "(bundled, or one you trained), press **Generate**, and listen to the mix, the synth stem, the residual "
           "and the reference when there is one, with spectrograms and SI-SDR. Stems are saved in the project "
           "folder (and downloaded on Colab)."),
        code(COMMON_PARAMS + '''
DATASET = "synth64"  #@param {type:"string"}
AUTO_RUN = False  # press Generate for me (used by the headless tests)''', tags=["parameters"]),
        md("## Install and project folder\nSame as the Setup notebook."),
        code(INSTALL),
        code(PROJECT),
        md("## Inputs\nThe bundled example plus the validation tracks of your dataset, if you made one."),
        code('''from synthgen_lib.data import FolderSource, make_windows
from synthgen_lib.demo import EXAMPLE_DIR
inputs = {"bundled example": EXAMPLE_DIR / "mix" / "example.flac"}
references = {"bundled example": EXAMPLE_DIR / "synth" / "example.flac"}
if (project / "datasets" / DATASET / "mix").is_dir():
    data = FolderSource(project / "datasets" / DATASET)
    for name, split in sorted(make_windows(data.tracks()).splits.items()):
        if split == "valid":
            inputs[name], references[name] = data.mix_files[name], data.synth_files[name]
print(len(inputs), "inputs")'''),
        md("## The panel\nSeparation takes a few seconds per minute of audio on a CPU."),
        code('''from IPython.display import display
from synthgen_lib.notebook import GeneratePanel
panel = GeneratePanel(project, inputs, references)
display(panel.widget)'''),
        code('''if AUTO_RUN:
    panel.generate(in_panel=False)'''),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"] = {"provenance": [], "gpuType": "T4"}
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
