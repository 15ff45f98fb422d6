"""Notebook helpers: the environment steps the Colab notebooks share, and the Generate panel.

Everything here also works in plain Jupyter and headless (the tests execute the notebooks):
Drive is mounted only on Colab, and widgets fall back to plain output when no front end is
attached.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

from .audio import SAMPLE_RATE, load_audio
from .device import has_native_bf16
from .display import comparison_html, loss_curve_png
from .errors import SynthGenError


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def project_folder(name: str = "SynthGen", use_drive: bool = True, local_root: str | Path = ".") -> Path:
    """The folder for datasets, runs and outputs: on Colab, ``MyDrive/name`` (mounting Drive
    first, so work survives a disconnect); elsewhere ``local_root/name``."""
    if in_colab() and use_drive:
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount("/content/drive")
        root = Path("/content/drive/MyDrive")
    else:
        root = Path(local_root)
    folder = (root / name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


CPU_RUNTIME = ("No GPU on this runtime. To get one: Runtime → Change runtime type → T4 GPU, then "
               "Runtime → Run all.")


def gpu_gate(quick: bool, run_on_cpu: bool = False, gpu: bool | None = None) -> bool:
    """The QUICK setting a notebook should run with, after one message on a runtime without a GPU.

    Training and SynthGen generation at the full settings take hours on a CPU, so there only the
    quick settings run unless the user ticked ``run_on_cpu``. With a GPU, ``quick`` is kept and
    nothing is printed. ``gpu`` overrides the detection (tests).
    """
    if torch.cuda.is_available() if gpu is None else gpu:
        return quick
    if run_on_cpu:
        print(f"{CPU_RUNTIME} Running the {'QUICK' if quick else 'full'} settings on the CPU, as RUN_ON_CPU asks "
              "(the full ones take hours).")
        return quick
    print(f"{CPU_RUNTIME} Running the QUICK settings{'' if quick else ' instead of the full ones'} (tiny data "
          "and models, minutes); tick RUN_ON_CPU to run the full settings on the CPU anyway (hours).")
    return True


def environment_report() -> str:
    """Python, torch, device (GPU name and memory), CPU cores and free memory, in a few lines."""
    from . import __version__

    lines = [f"SynthGen {__version__}, Python {platform.python_version()}, torch {torch.__version__}"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        lines.append(f"GPU: {props.name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free, "
                     f"bf16 {'yes' if has_native_bf16(0) else 'no (fp16 mixed precision)'}")
    else:
        lines.append("GPU: none — training and separation run on the CPU (slower; fine for the quick settings)")
    try:
        pages, page = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        free_ram = f", {pages * page / 2**30:.1f} GiB RAM free"
    except (ValueError, OSError, AttributeError):
        free_ram = ""
    lines.append(f"CPU: {os.cpu_count()} cores{free_ram}")
    return "\n".join(lines)


def show(html: str) -> None:
    """Display HTML in a notebook (print a note when there is no notebook)."""
    try:
        from IPython.display import HTML, display

        display(HTML(html))
    except ImportError:
        print(f"[{len(html)} characters of HTML]")


class LossPlot:
    """A loss plot that redraws in place after every epoch: ``train(..., on_epoch=plot.update)``."""

    def __init__(self, metrics_path: str | Path):
        self.metrics_path = Path(metrics_path)
        self._handle = None

    def update(self, _metrics: dict | None = None) -> None:
        from IPython.display import Image, display

        image = Image(loss_curve_png(self.metrics_path))
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


# The notebook settings that stand for the CLI's flags, so that a library message read in a
# notebook names what to change there (flags without a notebook setting are left as they are).
NOTEBOOK_SETTINGS = {"--root": "ROOT", "--window": "WINDOW", "--hop": "HOP", "--tracks": "TRACKS",
                     "--track-duration": "TRACK_DURATION", "--soundfont": "SOUNDFONT", "--exclude": "EXCLUDE",
                     "--arrangement": "ARRANGEMENT", "--synth-voices": "SYNTH_VOICES", "--production": "PRODUCTION", "--samples": "SAMPLES",
                     "--lr": "LEARNING_RATE", "--init": "INIT", "--model-config": "MODEL_CONFIG",
                     "--epochs": "EPOCHS", "--steps-per-epoch": "STEPS_PER_EPOCH", "--batch-size": "BATCH_SIZE",
                     "--segment": "SEGMENT", "--accumulate": "ACCUMULATE", "--model": "MODEL"}


def notebook_message(text: str) -> str:
    """``text`` with each CLI flag that has a notebook setting written as that setting."""
    import re

    text = re.sub(r"'synthgen download ([\w-]+) --output DIR'", r"GET_DATA = '\1' (Encode notebook)", text)
    return re.sub(r"(?<![\w-])--[a-z][a-z-]*", lambda m: NOTEBOOK_SETTINGS.get(m.group(0), m.group(0)), text)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def one_line_errors(shell=None) -> None:
    """In this notebook, a SynthGen error is shown as one line (``error: ...``, flags written as
    the notebook's settings) instead of a traceback; the cell still fails, so Run all stops."""
    shell = shell or _ipython()
    if shell is None:
        return

    def handler(self, etype, value, tb, tb_offset=None):
        print(f"error: {notebook_message(_first_line(value))}", file=sys.stderr)
        return []

    shell.set_custom_exc((SynthGenError,), handler)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


class CellStop(SynthGenError):
    """Stops "Run all" at a notebook cell with one line (shown by :func:`one_line_errors`, no
    traceback): the cells after it would only work on the wrong data."""


def get_dataset(choice: str, project: str | Path, link: str = "", tracks: int | None = None,
                synth_only: bool = True, sha256: str = "") -> tuple[str, str, str] | None:
    """The Encode notebook's download step: fetch and unpack ``choice`` (``musdb-sample``,
    ``musdb-hq``, ``slakh``, ``babyslakh``, or ``link``: an archive URL or Drive file/folder
    link in ``link``) into ``project/downloads/NAME``, and return the ``(SOURCE, ROOT, DATASET)``
    the next cells should use (DATASET named after the download, so it never mixes into another
    dataset); ``None`` for ``"none"``. For a named dataset, ``link`` replaces its download link
    (a mirror, Zenodo's access link, a Drive copy). ``tracks`` cuts Slakh2100 (streamed; BabySlakh
    is small and downloads whole, checked). Reruns return at once; interrupted downloads resume.

    Raises:
        CellStop: one line naming what failed (no network, not found, not shared, quota...).
    """
    import hashlib

    from .archives import dataset_source, download_dataset
    from .download import drive_id

    link = link.strip()
    if choice == "none":
        print("nothing to download (GET_DATA is 'none'): SOURCE, ROOT and DATASET stay as set above")
        return None
    slakh = choice in ("slakh", "babyslakh")
    tracks = int(tracks) if choice == "slakh" and tracks else None
    if choice == "link":
        if not link:
            raise CellStop("GET_DATA is 'link' but GET_LINK is empty — paste an archive URL or a Drive link")
        stem = drive_id(link) or Path(link.split("?")[0]).name.split(".")[0] or "dataset"
        name = f"{stem}-{hashlib.sha1(link.encode()).hexdigest()[:6]}"  # two links never share a folder
    else:
        name = choice + (f"-{tracks}" if tracks else "") + ("-synth" if slakh and synth_only else "")
    try:
        root = download_dataset(link if choice == "link" else choice, Path(project) / "downloads" / name,
                                sha256.strip() or None, url=None if choice == "link" else link or None,
                                tracks=tracks, synth_only=slakh and synth_only)
    except SynthGenError as exc:
        raise CellStop(str(exc)) from None
    source = dataset_source(root) or "folder"
    print(f"{choice} is in {root}; the next cells use SOURCE = {source!r}, ROOT = {str(root)!r}, "
          f"DATASET = {name!r} (train on it with DATASET = {name!r} in the Train notebook)")
    return source, str(root), name


def get_shared(link: str, project: str | Path, name: str, sha256: str = "") -> Path | None:
    """The Setup notebook's download: a shared file from a URL or Google Drive link into
    ``project/shared/name``, used only when complete (and matching ``sha256``). An archive
    (``name`` ending in .zip, .tar, .tar.gz...) is unpacked into ``project/downloads/`` instead,
    and the Encode notebook's ``SOURCE``/``ROOT`` for it are printed. ``None`` when ``link`` is
    empty.

    Raises:
        CellStop: one line naming what failed.
    """
    from .archives import dataset_source, download_dataset, is_archive_name
    from .download import fetch

    if not link.strip():
        print("nothing to download (SHARED_FILE is empty)")
        return None
    try:
        if is_archive_name(name):
            stem = Path(name).name.split(".")[0] or "shared"
            root = download_dataset(link.strip(), Path(project) / "downloads" / stem, sha256.strip() or None)
            print(f"unpacked into {root}; in the Encode notebook set SOURCE = "
                  f"{dataset_source(root) or 'folder'!r}, ROOT = {str(root)!r}")
            return root
        path = fetch(link.strip(), Path(project) / "shared" / name, sha256.strip() or None)
    except SynthGenError as exc:
        raise CellStop(str(exc)) from None
    print("downloaded", path)
    return path


def upload_audio(project: str | Path) -> dict[str, Path]:
    """On Colab, Colab's own upload dialog (the widget upload fails there above about 1 MB):
    the chosen files are saved under ``project/uploads``; returns ``{name: path}``. Elsewhere
    nothing happens (use the panel's upload button or path box)."""
    if not in_colab():
        print("not on Colab: use the panel's upload button or its path box")
        return {}
    from google.colab import files  # type: ignore[import-not-found]

    from .fileio import atomic_path

    saved = {}
    for name, content in files.upload().items():
        path = Path(project) / "uploads" / Path(name).name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(content)
        saved[path.stem] = path
    print(f"uploaded {len(saved)} file(s) to {Path(project) / 'uploads'}")
    return saved


def _slug(text: str, limit: int = 40) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(part for part in keep.split("-") if part)[:limit].strip("-")


class GeneratePanel:
    """The Generate notebook's panel: pick an input and a model, press Generate, listen.

    Separation models (SynthLSTM, SynthEncoder) isolate the synth, SynthMatch rebuilds it;
    SynthGen models generate a new one for the mix (or, with *remix*, replace the old one) from
    the description and the sampling knobs. Only the controls of the selected model's family
    are shown. While it runs the button is disabled and a progress bar moves; any error is one
    line in the panel. Each result gets its own folder under ``project/generated`` (input,
    model and settings in its name, never overwritten) with 24-bit stems and ``stems.zip``;
    the players hold MP3 previews of at most ``preview_seconds``.

    Args:
        project: the project folder; checkpoints under ``project/runs`` are offered next to the
            bundled models and the pretrained MusicGen models.
        inputs: ``{label: path}`` of audio files to offer (e.g. dataset examples).
        references: ``{label: path}`` of reference synth stems for those inputs (for SI-SDR).
        model: the model selected at first: a bundled name, a pretrained name or any
            checkpoint path (added to the list when it is not there).
        quick: generate at most ``QUICK_SECONDS`` of the input with a SynthGen model (the GPU
            gate's setting on a CPU runtime; separation is fast enough on a CPU).
        preview_seconds: the longest preview the players embed.
        query: the *part* box's first text: which synth part a separator trained with text
            queries keeps (empty: every part).
    """

    QUICK_SECONDS = 30.0

    def __init__(self, project: str | Path, inputs: dict[str, str | Path],
                 references: dict[str, str | Path] | None = None, model: str | None = None,
                 quick: bool = False, preview_seconds: float = 90.0, query: str = ""):
        import ipywidgets as w

        self.project = Path(project)
        self.references = {k: Path(v) for k, v in (references or {}).items()}
        self.quick, self.preview_seconds = quick, preview_seconds
        options = self._model_options(model)
        wide = w.Layout(width="95%")
        self.source = w.Dropdown(options=list(inputs.items()), description="input", layout=wide)
        self.path = w.Text(placeholder="or a path to an audio file", description="path", layout=wide)
        self.upload = w.FileUpload(accept="audio/*", multiple=False, description="upload",
                                   layout=w.Layout(display="none" if in_colab() else ""))
        self.model = w.Dropdown(options=options, value=str(model) if model else options[0][1], description="model",
                                layout=wide)
        self.wiener = w.Checkbox(value=False, description="Wiener refinement")
        self.query = w.Text(value=query, placeholder="which synth part, e.g. warm pad (empty: every synth part)",
                            description="part", layout=w.Layout(width="95%"))  # own layout: it is hidden alone
        self.role_check = w.Checkbox(value=True, description="role check: fade a part that does not sound like "
                                     "the role asked for")
        self.description = w.Text(value="bright detuned saw lead", description="description", layout=wide)
        self._known: dict[tuple[str, int], tuple[type, list[str]]] = {}
        self._net: tuple[tuple[str, int], object] | None = None
        self.closest_box = w.Dropdown(options=[], description="closest", layout=w.Layout(width="60%"))
        self.closest_box.observe(self._use_closest, names="value")
        self.description.observe(lambda _: self._refresh_closest(), names="value")
        self.remix = w.Checkbox(value=False, description="remix: replace the synth in the mix")
        self.temperature = w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, description="temperature")
        self.top_k = w.IntSlider(value=250, min=0, max=2048, description="top_k")
        self.top_p = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="top_p")
        self.cfg_coef = w.FloatSlider(value=3.0, min=1.0, max=10.0, step=0.5, description="cfg_coef")
        self.seed = w.IntText(value=0, description="seed")
        self.button = w.Button(description="Generate", button_style="primary", icon="play")
        self.download = w.Button(description="Download stems", icon="download",
                                 layout=w.Layout(display="none"))  # Colab: the last result's stems.zip
        self.download.on_click(lambda _: self.download_stems())
        self.last: Path | None = None
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(visibility="hidden"))
        self.status = w.HTML()
        self.output = w.Output()
        self.button.on_click(lambda _: self.generate())
        self.knobs = w.VBox([self.description, self.closest_box, self.remix, w.HBox([self.temperature, self.top_k]),
                             w.HBox([self.top_p, self.cfg_coef]), self.seed])
        self.model.observe(lambda _: self._show_family_controls(), names="value")
        self._show_family_controls()
        self.widget = w.VBox([self.source, self.path, self.upload, self.model, self.wiener, self.query,
                              self.role_check, self.knobs,
                              w.HBox([self.button, self.download, self.progress]), self.status, self.output])

    def _model_options(self, model: str | None) -> list[tuple[str, str]]:
        """``(label, value)`` for the model list: bundled, this project's runs (named by run,
        so long Drive paths are not cut off), pretrained MusicGen, and ``model`` if not there."""
        from .models import PRETRAINED_MUSICGEN, list_models

        options = [(name, name) for name, _, _, present in list_models() if present]
        for path in sorted((self.project / "runs").glob("*/best.pt")):
            options.append((f"run {path.parent.name} (best.pt)", str(path)))
        options += [(name, name) for name in PRETRAINED_MUSICGEN]
        if model and str(model) not in [value for _, value in options]:
            options.insert(0, (str(model), str(model)))
        return options

    def _key(self, model: str) -> tuple[str, int]:
        path = Path(model)
        return model, path.stat().st_mtime_ns if path.is_file() else 0

    def _about(self) -> tuple[type, list[str], set[str]]:
        """The selected model's family class, the descriptions it was trained with and the
        inference options it takes: a checkpoint is read once per version, for all three."""
        from .generate import model_class
        from .models import family_class, load_checkpoint, resolve

        model = str(self.model.value)
        key = self._key(str(resolve(model)))
        if key not in self._known:
            if resolve(model).suffix == ".pt" and resolve(model).is_file():
                payload = load_checkpoint(model)
                family = family_class(payload["family"])
                queries = {"query"} if (payload.get("config") or {}).get("queries") else set()
                self._known[key] = (family, list(payload.get("meta", {}).get("descriptions", [])),
                                    set(family.options) | queries)
            else:
                family = model_class(model)
                self._known[key] = (family, [], set(family.options))
        return self._known[key]

    def _show_family_controls(self) -> None:
        try:
            (family, _, options), self.status.value = self._about(), ""
        except SynthGenError as exc:  # e.g. a MODEL path that is not a checkpoint: said here, and on Generate
            family, options, self.status.value = None, set(), html_line(f"error: {exc}")
        self.wiener.layout.display = "" if "wiener" in options else "none"
        self.query.layout.display = self.role_check.layout.display = "" if "query" in options else "none"
        generator = family is not None and family.task == "generator"
        self.knobs.layout.display = "" if generator else "none"
        if generator:
            self._refresh_closest()

    def _input(self) -> tuple[str, Path]:
        if self.upload.value:
            item = self.upload.value[0]
            path = self.project / "uploads" / Path(item["name"]).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(item["content"]))
            self.upload.value = ()  # used once: the next press reads the input menu or the path again
            self.source.options = [*self.source.options, (path.stem, str(path))]
            self.source.value = str(path)
            return path.stem, path
        if self.path.value.strip():
            path = Path(self.path.value.strip())
            return path.stem, path
        label, path = self.source.label, Path(self.source.value)
        return label, path

    def known_descriptions(self) -> list[str]:
        """The descriptions the selected SynthGen checkpoint was trained with (else none);
        read once per checkpoint, not on every keystroke in the description box."""
        path = Path(str(self.model.value))
        if path.suffix != ".pt" or not path.is_file():
            return []
        return self._about()[1]

    def closest(self, top: int = 5) -> list[str]:
        """The training descriptions closest to the description typed, best first (a
        fine-tuned model follows those far better than new wording)."""
        from .describe import match_description

        return [m.description for m in match_description(self.description.value, self.known_descriptions(), top)]

    def _refresh_closest(self) -> None:
        self.closest_box.options = self.closest()

    def _use_closest(self, change) -> None:
        if change["new"]:
            self.description.value = change["new"]

    def _open(self, model: str):
        """The selected model, kept open between clicks (reloaded when its file changes)."""
        from .generate import open_model

        key = self._key(model)
        if self._net is None or self._net[0] != key:
            self._net = None  # let the old one go before loading the next
            self._net = (key, open_model(model))
        return self._net[1]

    def _run(self, net, mix, step):
        """Run the model as its family's task says: a separator gives synth and residual, a
        matcher its rebuilt synth, a generator a new synth (or a remix): ``(result, stems, tag)``
        where ``tag`` names the settings for the result's folder."""
        from .generate import generate, remix
        from .separate import separate

        task = getattr(net, "task", "separator")
        if task == "generator":
            knobs = dict(temperature=self.temperature.value, top_k=self.top_k.value, top_p=self.top_p.value,
                         cfg_coef=self.cfg_coef.value, seed=self.seed.value)
            text = self.description.value.strip() or None
            tag = f"seed{self.seed.value}-{_slug(text or 'default')}"
            if self.remix.value:
                result = remix(mix, text, net, SAMPLE_RATE, progress=step, **knobs)
                return result, {"mix": mix, "removed": result.removed, "synth": result.synth,
                                "remixed": result.remixed}, tag + "-remix"
            result = generate(mix, text, net, SAMPLE_RATE, progress=step, **knobs)
            return result, {"mix": mix, "synth": result.synth}, tag
        boxes = {"wiener": self.wiener.value, "query": self.query.value.strip() or None}
        options = {k: v for k, v in boxes.items() if k in net.options}  # each model takes the boxes it has options for
        checked = self.role_check.value or not options.get("query")
        result = separate(mix, net, SAMPLE_RATE, progress=step, role_check=checked, **options)
        stems = {"mix": mix, "synth": result.synth}
        if task == "separator":  # a matcher's synth is rebuilt from its database: no residual to hear
            stems["residual"] = result.residual
        tag = "-".join(k if v is True else _slug(v) for k, v in options.items() if v)
        return result, stems, tag + ("" if checked else "-no-role-check")

    def _emit(self, in_panel: bool, html: str | None = None, text: str | None = None) -> None:
        # Set the panel's outputs from the kernel (rather than capturing with `with output:`):
        # captured outputs live only in the browser and a later widget sync can wipe them.
        if not in_panel:
            show(html) if html is not None else print(text)
        elif html is not None:
            from IPython.display import HTML

            self.output.append_display_data(HTML(html))
        else:
            self.output.append_stdout(text + "\n")

    def _say(self, text: str, fraction: float | None = None) -> None:
        self.status.value = html_line(text)
        if fraction is not None:
            self.progress.value = max(0.0, min(1.0, fraction))

    def _folder(self, label: str, model: str, tag: str) -> Path:
        """A new folder for this result: input, model and settings in its name; a repeat gets
        ``-2``, ``-3``... instead of overwriting the last one."""
        name = Path(model).parent.name if Path(model).name == "best.pt" else Path(model).name
        base = "-".join(part for part in (_slug(label, 60), _slug(name, 40), tag) if part)
        folder, n = self.project / "generated" / base, 1
        while folder.exists():
            n += 1
            folder = self.project / "generated" / f"{base}-{n}"
        return folder

    def generate(self, in_panel: bool = True) -> Path | None:
        """Run the chosen model on the chosen input, show players and scores, save the stems.

        ``in_panel=False`` shows the result in the calling cell instead of the panel's output
        area (headless runs record cell outputs, not widget state). Returns the folder the
        stems were saved in, or ``None`` after showing an error line.
        """
        import time

        self.output.outputs = ()
        self.button.disabled, self.button.description, self.button.icon = True, "Working…", "hourglass-half"
        self.progress.value, self.progress.layout.visibility = 0.0, "visible"
        started = time.monotonic()
        try:
            return self._generate(in_panel, started)
        except Exception as exc:  # every error is one line in the panel, the library's or not
            line = _first_line(exc) if isinstance(exc, SynthGenError) else \
                f"{type(exc).__name__}: {_first_line(exc)}".rstrip(": ")
            self._say(f"error: {line}")
            self._emit(in_panel, text=f"error: {line}")
            return None
        finally:
            self.button.disabled, self.button.description, self.button.icon = False, "Generate", "play"
            self.progress.layout.visibility = "hidden"

    def _generate(self, in_panel: bool, started: float) -> Path:
        import time

        from .evaluate import log_mel_distance, si_sdr

        label, path = self._input()
        model = str(self.model.value)
        self._say(f"loading {Path(model).name}…", 0.02)
        net = self._open(model)
        generator = getattr(net, "task", "") == "generator"
        mix = load_audio(path, SAMPLE_RATE)
        note = ""
        if self.quick and generator and mix.shape[-1] > self.QUICK_SECONDS * SAMPLE_RATE:
            mix = mix[..., : int(self.QUICK_SECONDS * SAMPLE_RATE)]
            note = f" (QUICK: the first {self.QUICK_SECONDS:g} s only)"
        seconds = mix.shape[-1] / SAMPLE_RATE
        doing = "generating" if generator else "separating"
        self._say(f"{doing} {seconds:.0f} s of {label}{note}…", 0.05)

        def step(done: int, total: int) -> None:
            self._say(f"{doing} {seconds:.0f} s of {label}{note}: {done} of {total} "
                      f"({time.monotonic() - started:.0f} s)", 0.05 + 0.85 * done / max(total, 1))

        result, stems, tag = self._run(net, mix, step)
        self._say("saving the stems and drawing the players…", 0.92)
        scores = {}
        if not hasattr(result, "description") and label in self.references:  # separated or matched
            reference = load_audio(self.references[label], SAMPLE_RATE)[..., : mix.shape[-1]]
            stems["reference"] = reference
            if "residual" in stems:  # the mix's own score beside the synth's: the improvement
                mix_score = float(si_sdr(mix.flatten(), reference.flatten()))
                synth_score = float(si_sdr(result.synth.flatten(), reference.flatten()))
                scores["mix"] = mix_score
                scores["synth"] = f"SI-SDR {synth_score:.1f} dB ({synth_score - mix_score:+.1f} dB over the mix)"
            else:  # new audio, not phase-aligned with the reference: how close it sounds
                lmd = float(log_mel_distance(result.synth, reference, SAMPLE_RATE).mean())
                scores["synth"] = f"log-mel distance {lmd:.1f} dB"
        folder = self._folder(label, model, tag)
        result.save(folder, bits=24)
        stems_zip = _zip_stems(folder)
        name = folder.name
        title = f"{label} — {Path(model).name}{note}" + (f" — “{result.description}”"
                                                          if hasattr(result, "description") else "")
        self._emit(in_panel, html=comparison_html(stems, SAMPLE_RATE, title=title, scores=scores, compressed=True,
                                                  max_seconds=self.preview_seconds))
        wavs = ", ".join(sorted(p.name for p in folder.glob("*.wav")))
        self._emit(in_panel, text=f"saved {wavs} (24-bit) and {stems_zip.name} in the project folder's "
                                  f"{folder.relative_to(self.project)}")
        self._say(f"done in {time.monotonic() - started:.0f} s: {name}", 1.0)
        self.last = folder
        self.download.layout.display = "" if in_colab() else "none"
        return folder

    def download_stems(self) -> None:
        """On Colab, download the last result's ``stems.zip`` (a press, not every run: a song's
        24-bit stems are tens of MB); a refused download is one line in the panel."""
        if self.last is None:
            return
        try:
            from google.colab import files  # type: ignore[import-not-found]

            files.download(str(self.last / "stems.zip"))
        except Exception as exc:  # e.g. the browser blocked it: the stems are still in the folder
            self._say(f"error: the download did not start ({type(exc).__name__}: {exc}) — stems.zip is in {self.last}")


def _zip_stems(folder: Path) -> Path:
    """``folder/stems.zip`` holding every WAV of the folder (one download for all stems)."""
    import zipfile

    from .fileio import atomic_path

    target = folder / "stems.zip"
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for wav in sorted(folder.glob("*.wav")):
                archive.write(wav, f"{folder.name}/{wav.name}")
    return target


def html_line(text: str) -> str:
    """One line of status text for an ``ipywidgets.HTML`` (escaped)."""
    import html

    return f"<span class='sg-status'>{html.escape(text)}</span>"
