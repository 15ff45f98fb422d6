"""Write the four Colab notebooks from the cell lists below: ``python notebooks/build.py``.

Keeping the notebooks as short cell lists here makes them reviewable and keeps their shared
steps (install, project folder) identical. Each notebook has a ``parameters`` cell (Colab
forms; papermill injects the quick settings in the tests).
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
# the repository the install cell fetches: set in one place, pyproject.toml's [tool.synthgen]
REPOSITORY = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["tool"]["synthgen"]

INSTALL = '''# On Colab: get SynthGen's source from REPO_URL, the repository or a copy on Drive (folder or .zip); a failure
# stops here with one line. Elsewhere SynthGen is already installed and these two cells do nothing.
import sys
if "google.colab" in sys.modules:
    import os, runpy, shutil, subprocess, warnings, zipfile
    from pathlib import Path
    warnings.filterwarnings("ignore", "To exit")  # a stop is one line, without IPython's advice to quit
    SCRIPT, copy = "synthgen_lib/colab_install.py", Path(REPO_URL).expanduser()
    if REPO_URL.startswith("/content/drive") and not os.path.ismount("/content/drive"):
        from google.colab import drive
        drive.mount("/content/drive")  # the copy is on Drive
    if zipfile.is_zipfile(copy):
        zipfile.ZipFile(copy).extractall("synthgen-source")
    elif not copy.exists() and not Path("synthgen", SCRIPT).is_file():
        shutil.rmtree("synthgen", ignore_errors=True)  # a clone cut short
        os.environ["GIT_TERMINAL_PROMPT"] = "0"  # a private or mistyped URL fails instead of asking
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, "synthgen"], capture_output=True, text=True)
        if clone.returncode:
            raise SystemExit(f"install stopped: git could not clone {REPO_URL} ({clone.stderr.strip()[-200:]}) — "
                             "check REPO_URL, or set it to a copy of SynthGen on Drive (a folder or a .zip)")'''

INSTALL_RUN = '''# On Colab: install SynthGen beside Colab's own torch (a few minutes; REPO_REF: a tag or commit, empty for
# the default branch), check its imports, and say whether the runtime must restart.
if "google.colab" in sys.modules:
    roots = [Path("synthgen-source"), copy] if copy.exists() else [Path("synthgen")]
    found = [p.parents[1] for root in roots for p in (*root.glob(SCRIPT), *root.glob(f"*/{SCRIPT}"))]
    if not found:
        raise SystemExit(f"install stopped: {REPO_URL} holds no copy of SynthGen (no {SCRIPT} in it) — point "
                         "REPO_URL at the repository, or at a folder or .zip of it")
    print(runpy.run_path(str(found[0] / SCRIPT))["install"](str(found[0]) if copy.exists() else REPO_URL, REPO_REF,
                                                            "synthgen"))'''

PROJECT = '''from synthgen_lib.notebook import gpu_gate, one_line_errors, project_folder
one_line_errors()  # SynthGen's errors as one line naming the setting to change, not a traceback
project = project_folder(PROJECT, USE_DRIVE, LOCAL_ROOT)
print("project folder:", project)
QUICK = gpu_gate(QUICK, RUN_ON_CPU)  # no GPU: only the quick settings, unless RUN_ON_CPU'''

COMMON_PARAMS = f'''PROJECT = "SynthGen"  #@param {{type:"string"}}
USE_DRIVE = True  #@param {{type:"boolean"}}
REPO_URL = "{REPOSITORY["repository"]}"  #@param {{type:"string"}}
REPO_REF = "{REPOSITORY["ref"]}"  #@param {{type:"string"}}
LOCAL_ROOT = "."  # where the project folder goes outside Colab
QUICK = False  #@param {{type:"boolean"}}
RUN_ON_CPU = False  #@param {{type:"boolean"}}'''


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
           "shared checkpoint or dataset from Google Drive. Run the cells top to bottom; the install takes a few minutes, the rest seconds."),
        code(COMMON_PARAMS + '''
SHARED_FILE = ""  #@param {type:"string"}
SHARED_NAME = "shared_model.pt"  #@param {type:"string"}
SHARED_SHA256 = ""  #@param {type:"string"}''', tags=["parameters"]),
        md("## Install\nOn Colab this clones the repository and installs SynthGen without replacing Colab's "
           "torch (a few minutes). Elsewhere it does nothing. If the clone or an install fails, the cell stops with one line saying what to change; if Colab's runtime must restart, it says so."),
        code(INSTALL),
        code(INSTALL_RUN),
        md("## Project folder and machine\nMounts Google Drive on Colab (you will be asked to allow it) and "
           "shows the GPU, versions and free memory. Instant."),
        code(PROJECT + '''
from synthgen_lib.notebook import environment_report
print(environment_report())'''),
        md("## Optional: download a shared checkpoint or dataset\nPaste a link (a URL, or a Google Drive link or "
           "file id) into `SHARED_FILE`, and its SHA-256 if the author published one. The file is used only when it "
           "arrived complete and matches the checksum. A dataset archive (a `SHARED_NAME` ending in .zip, .tar or "
           ".tar.gz) is downloaded resumably, checked and unpacked into `downloads/` and the settings the Encode "
           "notebook needs for it are printed. Seconds to minutes, depending on size."),
        code('''from synthgen_lib.notebook import get_shared
shared = get_shared(SHARED_FILE, project, SHARED_NAME, SHARED_SHA256)'''),
    ],
    "02_encode_dataset.ipynb": [
        md("# SynthGen — 2. Encode Dataset\nChooses a data source, cuts it into training windows, writes it to "
           "the project folder in the `mix/`, `synth/`, `description/` layout at 32 kHz, and shows statistics "
           "and a few examples. SynthLSTM and SynthEncoder train on this audio directly; for SynthGen, pick a "
           "`SYNTHGEN` base and the windows are also encoded to EnCodec tokens."),
        code(COMMON_PARAMS + '''
SOURCE = "synthetic"  #@param ["synthetic", "sampled", "scores", "folder", "musdb", "slakh"]
ROOT = ""  #@param {type:"string"}
SOUNDFONT = ""  #@param {type:"string"}
EXCLUDE = ""  #@param {type:"string"}
ARRANGEMENT = "ensemble"  #@param ["ensemble", "electronic", "both"]
SYNTH_VOICES = "both"  #@param ["both", "soundfont", "procedural", "lmms", "all"]
PRODUCTION = 0.0  #@param {type:"slider", min:0, max:1, step:0.1}
SAMPLES = ""  #@param {type:"string"}
DATASET = "synth64"  #@param {type:"string"}
TRACKS = 64  #@param {type:"integer"}
TRACK_DURATION = 30.0  #@param {type:"number"}
WINDOW = 10.0  #@param {type:"number"}
HOP = 5.0  #@param {type:"number"}
SYNTHGEN = "none"  #@param ["none", "facebook/musicgen-melody", "facebook/musicgen-small", "tiny"]
SYNTHGEN_CONFIG = {}
GET_DATA = "none"  #@param ["none", "musdb-sample", "musdb-hq", "slakh", "babyslakh", "link"]
GET_LINK = ""  #@param {type:"string"}
GET_TRACKS = 20  #@param {type:"integer"}
GET_SYNTH_ONLY = True  #@param {type:"boolean"}
GET_SHA256 = ""  #@param {type:"string"}''', tags=["parameters"]),
        md("## Install and project folder\nSame as the Setup notebook (instant when already done). The `sampled` "
           "source plays the generator's scores with real instrument samples, the `scores` source plays real "
           "pieces (score files in `ROOT`, or the music21 corpus when `ROOT` is empty) with a synth part; on Colab "
           "this installs FluidSynth and the FluidR3 General MIDI SoundFont for them (about 30 seconds). "
           "`EXCLUDE`: a text file of score paths never to use (the corpus's judging pieces always are). "
           "`ARRANGEMENT` (scores): a synth among acoustic instruments (`ensemble`), mostly synths with drums as "
           "in an electronic production (`electronic`), or `both`. `SYNTH_VOICES` (scores): who plays the synth parts: "
           "SoundFont synth programs and the generator's procedural voices (`both`), one of them, LMMS's "
           "synth-engine presets (`lmms`; installs LMMS on Colab), or `all` three. `PRODUCTION` (synthetic, sampled, "
           "scores): the share of tracks mixed and mastered by a random production chain (per-stem EQ, compression, "
           "saturation, reverb, width; bus compressor, limiter, MP3), as real songs are. `SAMPLES` (scores): a folder of "
           "recorded instruments and drum kits (tonejs-instruments and Salamander packages, Hydrogen kits: docs/data.md) "
           "that play half the accompaniment parts they have recordings for."),
        code(INSTALL),
        code(INSTALL_RUN),
        code('''if "google.colab" in sys.modules and SOURCE in ("sampled", "scores"):
    !command -v fluidsynth >/dev/null || (apt-get update -qq && apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null)
if "google.colab" in sys.modules and SOURCE == "scores" and SYNTH_VOICES in ("lmms", "all"):
    !command -v lmms >/dev/null || (apt-get update -qq && apt-get install -y -qq lmms >/dev/null)'''),
        code(PROJECT),
        code('''if QUICK:  # a tiny dataset that renders in seconds on a CPU, and the offline tiny SynthGen
    TRACKS, TRACK_DURATION = 4, 11.0
    SYNTHGEN, SYNTHGEN_CONFIG = "tiny", {"dim": 32, "num_heads": 2, "card": 64}'''),
        md("## Optional: download a real dataset\n`GET_DATA` fetches and unpacks one into the project folder "
           "(`downloads/`) and points `SOURCE`, `ROOT` and `DATASET` (named after the download) at it: the MUSDB18 7-second sample or MUSDB18-HQ (about "
           "23 GB; Zenodo may ask you to request access, then paste its link in `GET_LINK`), Slakh2100 streamed and "
           "cut to `GET_TRACKS` tracks (with `GET_SYNTH_ONLY`, only the synth stems are kept: the full set is "
           "100 GB), the small BabySlakh, or `link`: any zip/tar/tar.gz archive URL or Google Drive file or folder "
           "link in `GET_LINK` (e.g. your own `mix/`, `synth/`, `description/` folders, zipped). The archive and its "
           "unpacked files share the project folder until the unpack ends: MUSDB18-HQ needs about twice 23 GB free "
           "(more than a free Google Drive; untick `USE_DRIVE` to use the runtime's disk). Interrupted? Run "
           "it again: the download resumes, and a finished one is not fetched again. Where each dataset comes from: "
           "docs/data.md."),
        code('''from synthgen_lib.notebook import get_dataset
got = get_dataset(GET_DATA, project, GET_LINK, tracks=GET_TRACKS, synth_only=GET_SYNTH_ONLY, sha256=GET_SHA256)
if got:
    SOURCE, ROOT, DATASET = got'''),
        md("## Write the dataset\nThe synthetic set renders at 18–35x realtime on one CPU core (`python -m "
           "bench.synthetic`; 64 tracks of 30 s: one to two minutes); the sampled and scores sets go through "
           "FluidSynth and take longer; other sources are "
           "converted. Interrupted? Run it again: finished tracks are kept."),
        code('''from synthgen_lib import prepare
dataset = project / "datasets" / DATASET
report = prepare(SOURCE, ROOT or None, dataset, num_tracks=TRACKS, track_duration=TRACK_DURATION,
                 window=WINDOW, hop=HOP, soundfont=SOUNDFONT or None, exclude=EXCLUDE or None,
                 arrangement=ARRANGEMENT, synth_voices=SYNTH_VOICES, production=PRODUCTION,
                 samples=SAMPLES or None)
print(report.format())'''),
        md("## Listen to a few windows\nMix and synth of the first validation windows, with spectrograms."),
        code('''from synthgen_lib.data import FolderSource, make_windows
from synthgen_lib.display import comparison_html
from synthgen_lib.notebook import show
source = FolderSource(dataset)
windows = make_windows(source.tracks(), WINDOW, HOP)
first = {}  # the first window of two different tracks
for window in windows.of("valid") or windows.of("train"):
    first.setdefault(window.track, window)
for window in list(first.values())[:2]:
    audio = source.load(window.track, 32000, 2, window.start, window.length)
    show(comparison_html({"mix": audio.mix, "synth": audio.synth}, 32000,
                         title=f"{window.track} from {window.start:g} s — {audio.description}"))'''),
        md("## SynthGen tokens\nEncodes every window's synth and mix to EnCodec tokens (+ the mix's chroma) in a "
           "few large shards under `codes/`; the report prints how fast it ran (x realtime). Interrupted? Run it again: finished shards are skipped."),
        code('''if SYNTHGEN != "none":
    from synthgen_lib.encode import encode
    codes = project / "codes" / f"{DATASET}-{SYNTHGEN.split('/')[-1]}"
    report = encode(FolderSource(dataset), codes, {"base": SYNTHGEN, **SYNTHGEN_CONFIG}, hop=HOP)
    print(report.format())
else:
    print("SYNTHGEN is 'none': no tokens encoded (needed only to train SynthGen)")'''),
    ],
    "03_train.ipynb": [
        md("# SynthGen — 3. Train\nTrains a model family on the dataset from the Encode notebook: SynthLSTM, "
           "SynthEncoder, SynthMatch (predicts the synth's descriptors and rebuilds it from a database of training "
           "synth segments) or SynthGen (on its tokens, `CODES`). The loss plot redraws after every epoch; `best.pt` (lowest validation loss) and "
           "`last.pt` are saved in the project folder. After a Colab disconnect, run the notebook again: training "
           "resumes from `last.pt`. `INIT` fine-tunes a trained model instead of starting from random weights: a bundled name (`synthlstm-demo`, `synthencoder-demo`) or a checkpoint's path (e.g. another run's `best.pt`), with a lower `LEARNING_RATE` (3e-4). SynthGen on a 16 GB T4: `lora_rank` 16 with gradient checkpointing for "
           "musicgen-melody, 4 windows per step with the rest of `BATCH_SIZE` accumulated (at most 9.8 GB, measured on a GPU); musicgen-small also fine-tunes in full. `QUERIES` (SynthLSTM, SynthEncoder) teaches the "
           "model text queries: half the examples ask for one synth part by its description (\"warm pad\") or for one "
           "the track lacks (answer: silence); the Encode notebook writes each part of a two-part synth for it. "
           "`QUERY_ONLY` trains only the query layers of `INIT`, which then answers exactly as before without a query."),
        code(COMMON_PARAMS + '''
DATASET = "synth64"  #@param {type:"string"}
MODEL = "lstm"  #@param ["lstm", "encoder", "synthmatch", "synthgen"]
CODES = "synth64-musicgen-melody"  #@param {type:"string"}
RUN = "lstm"  #@param {type:"string"}
ACCUMULATE = 1  #@param {type:"integer"}
EPOCHS = 40  #@param {type:"integer"}
STEPS_PER_EPOCH = 100  #@param {type:"integer"}
BATCH_SIZE = 8  #@param {type:"integer"}
SEGMENT = 4.0  #@param {type:"number"}
LEARNING_RATE = 0.001  #@param {type:"number"}
INIT = ""  #@param {type:"string"}
QUERIES = False  #@param {type:"boolean"}
QUERY_ONLY = False  #@param {type:"boolean"}
MODEL_CONFIG = {}''', tags=["parameters"]),
        md("## Install and project folder\nSame as the Setup notebook."),
        code(INSTALL),
        code(INSTALL_RUN),
        code(PROJECT),
        code('''if QUICK:  # a tiny model and a few steps: runs in seconds on a CPU
    EPOCHS, STEPS_PER_EPOCH, BATCH_SIZE, SEGMENT, CODES = 2, 3, 2, 1.0, "synth64-tiny"
    MODEL_CONFIG = {} if INIT else {"lstm": {"hidden_size": 32, "num_layers": 1, "n_mels": 32},
                    "encoder": {"channels": 8, "depth": 3, "lstm_layers": 1}, "synthgen": {},
                    "synthmatch": {"hidden_size": 32, "num_layers": 1, "database_examples": 8}}[MODEL]
elif not MODEL_CONFIG:  # SynthGen: LoRA + checkpointing fit a T4 with musicgen-melody
    MODEL_CONFIG = {"synthgen": {"lora_rank": 16, "gradient_checkpointing": True}}.get(MODEL, {})
if MODEL == "synthgen" and not QUICK and BATCH_SIZE > 4:  # batch 4 is what was measured to fit a T4
    BATCH_SIZE, ACCUMULATE = 4, ACCUMULATE * -(-BATCH_SIZE // 4)
    print(f"SynthGen: {BATCH_SIZE} windows per step, gradients accumulated over {ACCUMULATE} steps (fits a 16 GB T4)")'''),
        md("## Train\nAn epoch of the default SynthLSTM settings (100 steps of 8 x 4 s) takes about two minutes on "
           "one CPU core, validation included (the bundled model: 4000 steps in about 90 minutes, docs/training.md); a GPU is much faster, and mixed precision "
           "switches on by itself there."),
        code('''from synthgen_lib.notebook import LossPlot
from synthgen_lib.train import TrainConfig, train, trains_on_tokens
run = project / "runs" / RUN
data = project / "codes" / CODES if trains_on_tokens(MODEL) else project / "datasets" / DATASET
config = TrainConfig(model=MODEL, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, batch_size=BATCH_SIZE,
                     segment=SEGMENT, lr=LEARNING_RATE, accumulate=ACCUMULATE,
                     queries=0.5 if QUERIES else 0.0, query_only=QUERY_ONLY)
plot = LossPlot(run / "metrics.jsonl")
result = train(data, run, config, MODEL_CONFIG, on_epoch=plot.update, init=INIT or None)
print(f"{result.step} steps; best validation loss {result.best_valid_loss:.4f}; best checkpoint {result.best}")'''),
        md("## Evaluate\nSeparation models: SI-SDR of the best checkpoint on the validation tracks, next to the mix "
           "itself, the oracle ratio mask and librosa's HPSS (about 3 s per 20-s track on a CPU, most of it HPSS). SynthMatch: the log-mel distance "
           "(LMD, lower is better) next to random database segments. SynthGen: its validation "
           "cross-entropy, and how much higher it is when the mix is taken away (does it listen to the mix?)."),
        code('''from synthgen_lib.evaluate import evaluate_run
print(evaluate_run(result.best, data))'''),
    ],
    "04_generate.ipynb": [
        md("# SynthGen — 4. Generate\nPick an input (a dataset example, a path, or an upload) and a model "
           "(bundled, one you trained, any checkpoint path in `MODEL`, or pretrained MusicGen), press **Generate**, "
           "and listen. Separation models isolate the synth: mix, synth, residual and the reference when there is "
           "one, with spectrograms and SI-SDR beside the mix's own. SynthGen models write a new synth for the mix "
           "from your description (and with *remix*, put it in place of the old one); only the selected family's "
           "controls are shown. A separator trained with text queries (the bundled SynthLSTM is one) also shows a *part* box "
           "(`PART`): \"warm pad\" keeps that synth part only, empty keeps them all. Each result gets its own folder under `generated/` in the project folder, with "
           "24-bit stems and `stems.zip` (on Colab, the Download stems button fetches it); the players hold MP3 previews."),
        code(COMMON_PARAMS + '''
DATASET = "synth64"  #@param {type:"string"}
MODEL = ""  #@param {type:"string"}
UPLOAD = False  #@param {type:"boolean"}
PART = ""  #@param {type:"string"}
AUTO_RUN = False  # press Generate for me (used by the headless tests)''', tags=["parameters"]),
        md("## Install and project folder\nSame as the Setup notebook."),
        code(INSTALL),
        code(INSTALL_RUN),
        code(PROJECT),
        md("## Inputs\nThe bundled example plus the validation tracks of your dataset, if you made one. With "
           "`UPLOAD` ticked, Colab asks for audio files to upload (its own dialog: the panel's upload button is for "
           "Jupyter, and fails on Colab above about 1 MB)."),
        code('''from synthgen_lib.data import FolderSource, make_windows
from synthgen_lib.demo import EXAMPLE_DIR
inputs = {"bundled example": EXAMPLE_DIR / "mix" / "example.flac"}
references = {"bundled example": EXAMPLE_DIR / "synth" / "example.flac"}
if (project / "datasets" / DATASET / "mix").is_dir():
    data = FolderSource(project / "datasets" / DATASET)
    for name, split in sorted(make_windows(data.tracks()).splits.items()):
        if split == "valid":
            inputs[name], references[name] = data.mix_files[name], data.synth_files[name]
if UPLOAD:
    from synthgen_lib.notebook import upload_audio
    inputs.update(upload_audio(project))
print(len(inputs), "inputs")'''),
        md("## The panel\nWith the bundled models a press of Generate takes about 10 s for a 1-minute song and 11–12 s "
           "for a 3-minute one on a 2-core CPU (loading the model, separation, 24-bit stems, players and "
           "spectrograms; `python -m bench.panel`, docs/results.md), and the panel's output stays within about 4 MB "
           "for a 3-minute song (MP3 previews of the first 90 s). "
           "SynthGen writes the stem token by token, which is much slower: use a GPU runtime for the MusicGen models "
           "(without one, `QUICK` generates only the first 30 s)."),
        code('''from IPython.display import display
from synthgen_lib.notebook import GeneratePanel
panel = GeneratePanel(project, inputs, references, model=MODEL or None, quick=QUICK, query=PART)
if panel.known_descriptions():  # fine-tuned SynthGen follows its training descriptions best
    print("closest training descriptions:", *panel.closest(), sep="\\n  ")
display(panel.widget)'''),
        code('''if AUTO_RUN:
    panel.generate(in_panel=False)'''),
    ],
}


def main(folder: Path = HERE) -> None:
    """Write the notebooks into ``folder`` (the repository's notebooks/ by default)."""
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):  # stable ids, so rebuilding changes only edited cells
            cell.id = f"{name.split('_')[0]}-{i:02d}"
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"] = {"provenance": [], "gpuType": "T4"}
        nbformat.write(nb, folder / name)
        print("wrote", folder / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
