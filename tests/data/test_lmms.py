"""LMMS synth-engine voices: a part's notes rendered through one of LMMS's instrument presets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthgen_lib.data import lmms
from synthgen_lib.data.lmms import PRESETS, preset_name, render_preset, synth_presets
from synthgen_lib.data.synthetic import Note
from synthgen_lib.errors import SynthGenError

SR = 32_000
SINE = PRESETS / "Organic" / "puresine.xpf"  # one sine oscillator: its pitch is easy to read


def _peak_hz(x: np.ndarray, start: float, stop: float) -> float:
    seg = x[int(start * SR):int(stop * SR)]
    return float(np.argmax(np.abs(np.fft.rfft(seg * np.hanning(len(seg))))) * SR / len(seg))


def test_notes_sound_at_their_time_pitch_and_velocity():
    notes = [Note(0.5, 0.8, 69, 0.4), Note(1.75, 0.8, 81, 0.8)]
    x = render_preset(notes, SINE, 3 * SR, SR, bpm=96.0)
    assert x.shape == (3 * SR,)
    onset = np.argmax(np.abs(x) > 0.05 * np.abs(x).max()) / SR
    assert onset == pytest.approx(0.5, abs=60 / (96 * lmms.TICKS_PER_BEAT) / 2 + 0.001)  # LMMS's tick grid
    assert _peak_hz(x, 0.7, 1.2) == pytest.approx(440, abs=4)  # MIDI 69 is A4
    assert _peak_hz(x, 1.9, 2.4) == pytest.approx(880, abs=4)
    assert np.abs(x[int(0.1 * SR):int(0.45 * SR)]).max() < 1e-4  # silent before the first note
    quiet, loud = (np.sqrt(np.mean(x[int(a * SR):int(b * SR)] ** 2)) for a, b in ((0.7, 1.2), (1.9, 2.4)))
    assert loud > 1.5 * quiet  # velocity 0.8 against 0.4


def test_every_synth_preset_renders_sound():
    """The presets a track can draw all load and play (no sample-player or drum presets)."""
    presets = synth_presets()
    assert len(presets) > 100
    assert not [p for p in presets if p.startswith(("Kicker/", "AudioFileProcessor/")) or "Drums_" in p]
    assert preset_name(PRESETS / "TripleOscillator" / "SuperSawLead.xpf") == "SuperSawLead (TripleOscillator)"
    assert preset_name("OpulenZ/Halo_pad.xpf") == "Halo pad (OpulenZ)"
    rng = np.random.default_rng(0)
    for rel in rng.choice(presets, 6, replace=False):
        x = render_preset([Note(0.0, 0.5, 60, 0.8), Note(0.5, 0.5, 64, 0.8)], PRESETS / rel, SR, SR)
        assert np.sqrt(np.mean(x ** 2)) > 1e-3, rel


def test_a_presets_own_wave_files_are_found():
    """TripleOscillator's "user wave" oscillators name LMMS's bundled shapes relative to its data
    folder, which a rendering run does not resolve: the project names them in full."""
    import xml.etree.ElementTree as ET

    from synthgen_lib.data.lmms import project_xml

    for name, wave in (("TheMaster", "shapes/micro.wav"), ("Jupiter", "smooth_inv_saw.ogg")):
        root = ET.fromstring(project_xml([Note(0.0, 0.5, 60, 0.8)], PRESETS / "TripleOscillator" / f"{name}.xpf", 120))
        waves = [v for node in root.iter() for k, v in node.attrib.items() if k.startswith("userwavefile") and v]
        assert [w for w in waves if w.endswith(wave) and Path(w).is_absolute() and Path(w).is_file()], waves


def test_a_bad_preset_or_missing_lmms_is_one_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.xpf"
    bad.write_text("<not xml")
    with pytest.raises(SynthGenError, match="bad.xpf: not a readable LMMS preset"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], bad, SR, SR)
    other = tmp_path / "other.xpf"
    other.write_text("<lmms-project><head/></lmms-project>")
    with pytest.raises(SynthGenError, match="other.xpf: not an LMMS instrument preset"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], other, SR, SR)
    monkeypatch.setattr(lmms.shutil, "which", lambda name: None)
    with pytest.raises(SynthGenError, match="LMMS is not installed"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], SINE, SR, SR)
    with pytest.raises(SynthGenError, match="no LMMS presets there"):
        synth_presets(tmp_path / "nowhere")
