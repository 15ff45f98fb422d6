"""The main job on the embedded default: separate the bundled example with the bundled models.

``run_demo`` writes, for each bundled model, ``synth.wav`` and ``residual.wav``, plus an
``index.html`` with a player and a spectrogram for mix, synth, residual and the reference
synth, and the SI-SDR of each estimate. ``build_example`` renders the bundled example (a
synthetic track from a seed the demo models never trained on) into ``assets/examples``.
"""
from __future__ import annotations

from pathlib import Path

from .audio import SAMPLE_RATE, load_audio, save_audio
from .display import comparison_html, html_page
from .errors import SynthGenError
from .evaluate import si_sdr
from .fileio import write_text_atomic
from .models import ASSETS, list_models, load_model
from .separate import separate

EXAMPLE_DIR = ASSETS / "examples"
EXAMPLE_NAME = "example"
EXAMPLE_SEED = 2026  # the demo models train on seed 0: this track is held out


def build_example(folder: str | Path = EXAMPLE_DIR, seed: int = EXAMPLE_SEED, index: int = 0,
                  duration: float = 20.0) -> Path:
    """Render the bundled example as ``mix/``, ``synth/``, ``description/`` (FLAC, 32 kHz)."""
    from .data.synthetic import render_track

    folder = Path(folder)
    track = render_track(seed, index, duration, SAMPLE_RATE, 2)
    save_audio(folder / "mix" / f"{EXAMPLE_NAME}.flac", track.mix, SAMPLE_RATE)
    save_audio(folder / "synth" / f"{EXAMPLE_NAME}.flac", track.synth, SAMPLE_RATE)
    write_text_atomic(folder / "description" / f"{EXAMPLE_NAME}.txt", track.description + "\n")
    return folder


def run_demo(output: str | Path = "outputs/demo", models: list[str] | None = None,
             example: str | Path = EXAMPLE_DIR) -> Path:
    """Separate the example with each model; write stems and ``index.html``; return the page path."""
    example = Path(example)
    mix_path = example / "mix" / f"{EXAMPLE_NAME}.flac"
    if not mix_path.is_file():
        raise SynthGenError(f"{mix_path}: the bundled example is missing — run 'make demo-models'")
    names = models or [name for name, _, _, present in list_models() if present]
    if not names:
        raise SynthGenError("no bundled model checkpoint found in assets/models — run 'make demo-models'")
    mix = load_audio(mix_path, SAMPLE_RATE)
    reference = load_audio(example / "synth" / f"{EXAMPLE_NAME}.flac", SAMPLE_RATE)
    description = (example / "description" / f"{EXAMPLE_NAME}.txt").read_text(encoding="utf-8").strip()
    out = Path(output)
    sections = [f"<p>Example: <em>{description}</em> ({mix.shape[-1] / SAMPLE_RATE:.1f} s, held out from "
                "training). Each model's synth estimate and residual (mix − synth) are below, with the "
                "reference synth stem.</p>"]
    scores_text = []
    save_audio(out / "mix.wav", mix, SAMPLE_RATE, bits=32, clip="none")
    save_audio(out / "reference.wav", reference, SAMPLE_RATE, bits=32, clip="none")
    links = {"mix": "mix.wav", "reference": "reference.wav"}
    for name in map(str, names):
        model = load_model(name)
        result = separate(mix, model, SAMPLE_RATE)
        label = Path(name).stem  # a bundled name, or a checkpoint file's name
        result.save(out / label)
        score = float(si_sdr(result.synth.flatten(), reference.flatten()))
        scores_text.append(f"{label}: SI-SDR {score:.1f} dB")
        sections.append(comparison_html({"mix": mix, "synth": result.synth, "residual": result.residual,
                                         "reference": reference}, SAMPLE_RATE, title=label,
                                        scores={"synth": score}, links=links | {
                                            "synth": f"{label}/synth.wav", "residual": f"{label}/residual.wav"}))
    baseline = float(si_sdr(mix.flatten(), reference.flatten()))
    sections.insert(1, "<p>" + "; ".join(scores_text) + f"; the mix itself scores {baseline:.1f} dB.</p>")
    page = write_text_atomic(out / "index.html", html_page("SynthGen demo", "".join(sections)))
    return page.resolve()

