"""notebook.py: the Generate panel, headless, with every family selected (the same calls the
button makes)."""
from __future__ import annotations

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
    assert model in panel.model.options  # offered, as a user sees it
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


def test_the_wiener_box_changes_what_synthlstm_returns(project):
    plain = _panel(project, "synthlstm-demo").generate(in_panel=False)
    a = sf.read(str(plain / "synth.wav"))[0]
    refined = _panel(project, "synthlstm-demo", wiener=True).generate(in_panel=False)
    b = sf.read(str(refined / "synth.wav"))[0]
    assert not np.allclose(a, b, atol=1e-4)
