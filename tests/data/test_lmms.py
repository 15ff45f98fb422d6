"""LMMS synth-engine voices: a part's notes rendered through one of LMMS's instrument presets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthgen_lib.data import lmms
from synthgen_lib.data.lmms import PRESETS, preset_name, project_xml, render_preset, synth_presets
from synthgen_lib.data.synthetic import Note
from synthgen_lib.errors import SynthGenError

SR = 32_000
SQUARE = PRESETS / "TripleOscillator" / "Square.xpf"  # saw and square, no random phases


def _fundamental_hz(x: np.ndarray, start: float, stop: float) -> float:
    """The lowest frequency whose magnitude is over half the spectrum's peak."""
    seg = x[int(start * SR):int(stop * SR)]
    mag = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.argmax(mag > 0.5 * mag.max()) * SR / len(seg))


def test_notes_sound_at_their_time_pitch_and_velocity():
    notes = [Note(0.5, 0.8, 69, 0.8), Note(1.75, 0.8, 81, 0.8), Note(3.0, 0.8, 81, 0.4)]
    x = render_preset(notes, SQUARE, 4 * SR, SR, bpm=96.0)
    assert x.shape == (4 * SR,)
    onset = np.argmax(np.abs(x) > 0.05 * np.abs(x).max()) / SR
    assert onset == pytest.approx(0.5, abs=60 / (96 * lmms.TICKS_PER_BEAT) / 2 + 0.002)  # LMMS's tick grid
    # MIDI 69 is A4, 440 Hz; this preset's base note (LMMS's A5, where its default is A4) puts
    # it an octave lower, as it plays in LMMS
    assert _fundamental_hz(x, 0.7, 1.2) == pytest.approx(220, abs=3)
    assert _fundamental_hz(x, 1.9, 2.4) == pytest.approx(440, abs=3)
    assert np.abs(x[int(0.1 * SR):int(0.45 * SR)]).max() < 1e-4  # silent before the first note
    loud, quiet = (np.sqrt(np.mean(x[int(a * SR):int(b * SR)] ** 2)) for a, b in ((1.9, 2.4), (3.2, 3.7)))
    assert loud / quiet == pytest.approx(2.0, rel=0.15)  # the same key at velocity 0.8 and 0.4


def test_a_tempo_with_decimals_keeps_late_notes_on_time():
    """LMMS plays whole-number tempos: ticks counted at 60.49 bpm would put a note at 18 s
    0.15 s late."""
    x = render_preset([Note(18.0, 0.5, 69, 0.8)], SQUARE, 19 * SR, SR, bpm=60.49)
    onset = np.argmax(np.abs(x) > 0.05 * np.abs(x).max()) / SR
    assert onset == pytest.approx(18.0, abs=60 / (60 * lmms.TICKS_PER_BEAT) / 2 + 0.002)


def test_every_synth_preset_renders_sound():
    """The presets a track can draw all load and play (no sample-player or drum presets)."""
    presets = synth_presets()
    assert len(presets) > 100
    assert not [p for p in presets if p.startswith(("Kicker/", "AudioFileProcessor/")) or "Drums_" in p]
    for rel in presets:  # every one is a preset this LMMS reads (no pre-0.4 files)
        assert b"<instrumenttrack " in project_xml([Note(0.0, 0.5, 60, 0.8)], PRESETS / rel, 120.0), rel
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
    crashes = iter([True])  # LMMS crashes once, then renders: the part is played all the same

    def flaky(cmd, **kwargs):
        return real(["false"] if next(crashes, False) else cmd, **kwargs)

    real = lmms.subprocess.run
    monkeypatch.setattr(lmms.subprocess, "run", flaky)
    assert np.any(render_preset([Note(0.0, 0.5, 60, 0.8)], SQUARE, SR, SR))
    monkeypatch.setattr(lmms.subprocess, "run", lambda cmd, **kwargs: real(["false"], **kwargs))
    with pytest.raises(SynthGenError, match="Square.xpf: LMMS could not render it \\(exit status 1\\)"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], SQUARE, SR, SR)
    def hangs(cmd, **kwargs):
        raise lmms.subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(lmms.subprocess, "run", hangs)
    with pytest.raises(SynthGenError, match="Square.xpf: LMMS could not render it \\(no answer in 300 s\\)"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], SQUARE, SR, SR)
    monkeypatch.setattr(lmms.shutil, "which", lambda name: None)
    with pytest.raises(SynthGenError, match="LMMS is not installed"):
        render_preset([Note(0.0, 0.5, 60, 0.8)], SQUARE, SR, SR)
    with pytest.raises(SynthGenError, match="no LMMS presets there"):
        synth_presets(tmp_path / "nowhere")
