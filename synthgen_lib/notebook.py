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
from .display import comparison_html, loss_curve_png


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


def environment_report() -> str:
    """Python, torch, device (GPU name and memory), CPU cores and free memory, in a few lines."""
    from . import __version__

    lines = [f"SynthGen {__version__}, Python {platform.python_version()}, torch {torch.__version__}"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        lines.append(f"GPU: {props.name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free, "
                     f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no (fp16 mixed precision)'}")
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


class GeneratePanel:
    """The Generate notebook's panel: pick an input and a model, press Generate, listen.

    Separation models (SynthLSTM, SynthEncoder) isolate the synth; SynthGen models generate a
    new one for the mix (or, with *remix*, replace the old one) from the description and the
    sampling knobs, which apply to SynthGen only.

    Args:
        project: the project folder; stems are saved under ``project/generated``, and
            checkpoints found under ``project/runs`` are offered next to the bundled models
            and the pretrained MusicGen models.
        inputs: ``{label: path}`` of audio files to offer (e.g. dataset examples).
        references: ``{label: path}`` of reference synth stems for those inputs (for SI-SDR).
        model: the model selected at first (default: the first bundled one).
    """

    def __init__(self, project: str | Path, inputs: dict[str, str | Path],
                 references: dict[str, str | Path] | None = None, model: str | None = None):
        import ipywidgets as w

        from .models import PRETRAINED_MUSICGEN, list_models

        self.project = Path(project)
        self.references = {k: Path(v) for k, v in (references or {}).items()}
        models = [name for name, _, _, present in list_models() if present]
        models += sorted(str(p) for p in (self.project / "runs").glob("*/best.pt"))
        models += list(PRETRAINED_MUSICGEN)
        self.source = w.Dropdown(options=list(inputs.items()), description="input")
        self.path = w.Text(placeholder="or a path to an audio file", description="path")
        self.upload = w.FileUpload(accept="audio/*", multiple=False, description="upload")
        self.model = w.Dropdown(options=models, value=model or models[0], description="model")
        self.wiener = w.Checkbox(value=False, description="Wiener refinement (SynthLSTM)")
        self.description = w.Text(value="bright detuned saw lead", description="description")
        self._descriptions: dict[tuple[str, int], list[str]] = {}
        self.closest_box = w.Dropdown(options=[], description="closest", layout=w.Layout(width="60%"))
        self.closest_box.observe(self._use_closest, names="value")
        self.description.observe(lambda _: self._refresh_closest(), names="value")
        self.model.observe(lambda _: self._refresh_closest(), names="value")
        self.remix = w.Checkbox(value=False, description="remix: replace the synth in the mix (SynthGen)")
        self.temperature = w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, description="temperature")
        self.top_k = w.IntSlider(value=250, min=0, max=2048, description="top_k")
        self.top_p = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="top_p")
        self.cfg_coef = w.FloatSlider(value=3.0, min=1.0, max=10.0, step=0.5, description="cfg_coef")
        self.seed = w.IntText(value=0, description="seed")
        self.button = w.Button(description="Generate", button_style="primary")
        self.output = w.Output()
        self.button.on_click(lambda _: self.generate())
        knobs = w.VBox([self.description, self.closest_box, self.remix, w.HBox([self.temperature, self.top_k]),
                        w.HBox([self.top_p, self.cfg_coef]), self.seed])
        self.widget = w.VBox([self.source, self.path, self.upload, self.model, self.wiener, knobs, self.button,
                              self.output])

    def _input(self) -> tuple[str, Path]:
        if self.upload.value:
            item = self.upload.value[0]
            path = self.project / "uploads" / item["name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(item["content"]))
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
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._descriptions:
            from .models import load_checkpoint

            self._descriptions[key] = list(load_checkpoint(path).get("meta", {}).get("descriptions", []))
        return self._descriptions[key]

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

    def _run(self, model: str, mix):
        """Run the chosen model as its family's task says: a separator gives synth and residual,
        a matcher its rebuilt synth, a generator a new synth (or a remix): ``(result, stems)``."""
        from .generate import generate, open_model, remix
        from .separate import separate

        net = open_model(model)
        task = getattr(net, "task", "separator")
        if task == "generator":
            knobs = dict(temperature=self.temperature.value, top_k=self.top_k.value, top_p=self.top_p.value,
                         cfg_coef=self.cfg_coef.value, seed=self.seed.value)
            text = self.description.value.strip() or None
            if self.remix.value:
                result = remix(mix, text, net, SAMPLE_RATE, **knobs)
                return result, {"mix": mix, "removed": result.removed, "synth": result.synth,
                                "remixed": result.remixed}
            result = generate(mix, text, net, SAMPLE_RATE, **knobs)
            return result, {"mix": mix, "synth": result.synth}
        boxes = {"wiener": self.wiener.value}  # each family takes the boxes it has options for
        result = separate(mix, net, SAMPLE_RATE, **{k: v for k, v in boxes.items() if k in net.options})
        stems = {"mix": mix, "synth": result.synth}
        if task == "separator":  # a matcher's synth is rebuilt from its database: no residual to hear
            stems["residual"] = result.residual
        return result, stems

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

    def generate(self, in_panel: bool = True) -> Path | None:
        """Separate the chosen input with the chosen model, show players, save the stems.

        ``in_panel=False`` shows the result in the calling cell instead of the panel's output
        area (headless runs record cell outputs, not widget state). Returns the folder the
        stems were saved in, or ``None`` after showing an error line.
        """
        from .errors import SynthGenError
        from .evaluate import log_mel_distance, si_sdr

        self.output.outputs = ()
        try:
            label, path = self._input()
            model = str(self.model.value)
            mix = load_audio(path, SAMPLE_RATE)
            result, stems = self._run(model, mix)
        except SynthGenError as exc:
            self._emit(in_panel, text=f"error: {exc}")
            return None
        scores = {}
        if not hasattr(result, "description") and label in self.references:  # separated or matched
            reference = load_audio(self.references[label], SAMPLE_RATE)[..., : mix.shape[-1]]
            stems["reference"] = reference
            if "residual" in stems:
                scores["synth"] = float(si_sdr(result.synth.flatten(), reference.flatten()))
            else:  # new audio, not phase-aligned with the reference: how close it sounds
                lmd = float(log_mel_distance(result.synth, reference, SAMPLE_RATE).mean())
                scores["synth"] = f"log-mel distance {lmd:.1f} dB"
        name = Path(model).parent.name if Path(model).name == "best.pt" else Path(model).name
        folder = self.project / "generated" / f"{label}-{name}"
        result.save(folder)
        title = f"{label} — {name}" + (f" — “{result.description}”" if hasattr(result, "description") else "")
        self._emit(in_panel, html=comparison_html(stems, SAMPLE_RATE, title=title, scores=scores))
        self._emit(in_panel, text=f"saved {', '.join(sorted(p.name for p in folder.glob('*.wav')))} in {folder}")
        if in_colab():
            from google.colab import files  # type: ignore[import-not-found]

            files.download(str(folder / "synth.wav"))
        return folder
