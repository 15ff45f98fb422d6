"""Sampled tracks: the synthetic scores played by a GM SoundFont through FluidSynth (installed by
``make install-test``: Debian's fluidsynth and timgm6mb-soundfont)."""
from __future__ import annotations

import numpy as np
import pytest

from synthgen_lib.cli import main
from synthgen_lib.data import open_source
from synthgen_lib.data.soundfont import GM_NAMES, choose_programs, find_soundfont, render_notes
from synthgen_lib.data.synthetic import Note, render_track, sample_spec
from synthgen_lib.errors import SynthGenError

SR = 16_000


@pytest.fixture(scope="module")
def soundfont():
    return find_soundfont()


def test_a_note_sounds_at_its_time_and_pitch(soundfont):
    audio = render_notes([Note(0.5, 0.6, 69, 0.8)], 0, 2 * SR, SR, soundfont)  # piano A4
    assert audio.shape == (2 * SR,)
    before, during = audio[: int(0.45 * SR)], audio[int(0.55 * SR): int(1.05 * SR)]
    assert np.abs(before).max() < 1e-4 < np.abs(during).max()
    spectrum = np.abs(np.fft.rfft(during * np.hanning(len(during))))
    peak = np.fft.rfftfreq(len(during), 1 / SR)[spectrum.argmax()]
    assert abs(peak - 440.0) < 6.0


def test_sampled_track_sums_to_its_mix_and_is_not_the_procedural_one(soundfont):
    a = render_track(0, 1, duration=4.0, sample_rate=SR, soundfont=soundfont)
    b = render_track(0, 1, duration=4.0, sample_rate=SR, soundfont=soundfont)
    total = np.sum(np.stack(list(a.stems.values())), axis=0, dtype=np.float64)
    np.testing.assert_allclose(a.mix, total, atol=1e-6)
    np.testing.assert_array_equal(a.mix, b.mix)  # deterministic per (seed, index)
    assert a.mix.shape == (2, 4 * SR) and 0.4 < np.abs(a.mix).max() <= 0.95
    assert set(a.stems) == {"synth", *a.spec.accompaniment}
    for stem in a.stems.values():
        assert np.sqrt(np.mean(stem ** 2)) > 1e-3
    procedural = render_track(0, 1, duration=4.0, sample_rate=SR)
    assert abs(np.corrcoef(a.synth[0], procedural.synth[0])[0, 1]) < 0.5
    assert a.name == "sampled_s0_00001" and procedural.name == "synthetic_s0_00001"
    assert GM_NAMES[choose_programs(a.spec)["synth0"]] in a.description


def test_programs_suit_each_part():
    for i in range(40):
        spec = sample_spec(5, i)
        programs = choose_programs(spec)
        for j, _ in enumerate(spec.synths):  # sampled synthesizers: GM synth bass..pads
            assert programs[f"synth{j}"] in (38, 39, 50, 51, 62, 63) or 80 <= programs[f"synth{j}"] <= 95
        assert set(programs) == {f"synth{j}" for j in range(len(spec.synths))} | (
            set(spec.accompaniment) - {"drums"})
        assert choose_programs(spec) == programs


def test_sampled_source_and_prepare_cli(tmp_path, soundfont):
    src = open_source("sampled", num_tracks=3, seed=4, track_duration=3.0)
    assert src.kind == "sampled" and [t.name for t in src.tracks()][0] == "sampled_s4_00000"
    out = tmp_path / "sampled"
    assert main(["prepare", "--source", "sampled", "--soundfont", str(soundfont), "--tracks", "2",
                 "--track-duration", "3", "--seed", "4", "--output", str(out)]) == 0
    assert sorted(p.name for p in (out / "mix").iterdir()) == ["sampled_s4_00000.wav",
                                                               "sampled_s4_00001.wav"]
    text = (out / "description" / "sampled_s4_00000.txt").read_text()
    assert text.strip() == src.tracks()[0].description


def test_bad_soundfonts_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SynthGenError, match="nope.sf2: no such SoundFont"):
        find_soundfont(tmp_path / "nope.sf2")
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(SynthGenError, match="junk.sf2: not a SoundFont"):
        find_soundfont(junk)
    assert main(["prepare", "--source", "sampled", "--soundfont", str(junk), "--tracks", "1",
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk.sf2: not a SoundFont" in err and len(err.splitlines()) == 1
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(SynthGenError, match="FluidSynth is not installed"):
        render_notes([Note(0.0, 0.5, 60, 0.8)], 0, SR, SR, find_soundfont())


def test_the_default_is_a_named_gm_soundfont_before_debians_default_link(tmp_path, monkeypatch):
    """Installing an FM SoundFont for training (opl3-soundfont) repoints default-GM.sf2 at it;
    'the installed one' must stay FluidR3 or TimGM6mb."""
    from synthgen_lib.data import soundfont as module

    real = find_soundfont()
    folder = tmp_path / "sf2"
    folder.mkdir()
    (folder / "OPL-3_FM_128M.sf2").write_bytes(real.read_bytes()[:12])
    (folder / "default-GM.sf2").symlink_to(folder / "OPL-3_FM_128M.sf2")
    monkeypatch.setattr(module, "SOUNDFONT_DIRS", (folder,))
    assert find_soundfont() == folder / "default-GM.sf2"  # only the link: it is what there is
    (folder / "TimGM6mb.sf2").write_bytes(real.read_bytes()[:12])
    assert find_soundfont() == folder / "TimGM6mb.sf2"
