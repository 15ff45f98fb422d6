from __future__ import annotations

import numpy as np
import pytest

from synthgen_lib.data.synthetic import (ACCOMPANIMENT, OSCILLATORS, ROLES, Note, SyntheticSource,
                                         _piano_voice, _pluck_voice, _synth_voice, render_track,
                                         sample_spec)


def test_same_seed_same_track_other_seed_other_track():
    a, b = render_track(7, 2, duration=4.0), render_track(7, 2, duration=4.0)
    assert a.description == b.description
    assert set(a.stems) == set(b.stems)
    for k in a.stems:
        np.testing.assert_array_equal(a.stems[k], b.stems[k])
    c = render_track(8, 2, duration=4.0)
    assert not np.array_equal(a.mix, c.mix)


@pytest.mark.parametrize("index", range(4))
def test_mix_is_the_sum_of_the_stems(index):
    track = render_track(0, index, duration=5.0, sample_rate=16000)
    total = np.sum(np.stack(list(track.stems.values())), axis=0, dtype=np.float64)
    np.testing.assert_allclose(track.mix, total, atol=1e-6)
    assert track.mix.shape == (2, 80000) and track.mix.dtype == np.float32
    assert 0.4 < np.abs(track.mix).max() <= 0.95  # headroom, never clipping
    assert np.sqrt(np.mean(track.synth ** 2)) > 1e-3  # the target is really there
    assert set(track.stems) == {"synth", *track.spec.accompaniment}


def test_mono_rendering():
    track = render_track(1, 0, duration=2.0, sample_rate=16000, channels=1)
    assert track.mix.shape == (1, 32000)


def test_descriptions_match_the_parameters():
    for i in range(150):
        spec = sample_spec(11, i, duration=10.0)
        text = spec.describe()
        main = spec.synths[0]
        assert text.startswith(f"{main.brightness} {main.oscillator} {main.role},")
        assert f"{main.attack_word} attack" in text
        assert f"{spec.key_name}, {spec.bpm} bpm" in text
        for inst in spec.accompaniment:
            assert inst in text.split("bpm, with ")[1]
        assert ("vibrato" in text.split(";")[0]) == (main.vibrato_cents > 0)
        for fx in ("chorus", "delay", "reverb", "drive"):
            assert (fx in text.split(";")[0]) == (fx in main.effects)
        bright = {"dark": main.cutoff_hz < 1200, "bright": main.cutoff_hz >= 3500}
        assert all(ok for word, ok in bright.items() if word == main.brightness)


def test_the_set_is_varied():
    specs = [sample_spec(0, i) for i in range(200)]
    assert {p.oscillator for s in specs for p in s.synths} == set(OSCILLATORS)
    assert {p.role for s in specs for p in s.synths} == set(ROLES)
    assert {a for s in specs for a in s.accompaniment} == set(ACCOMPANIMENT)
    assert {p.brightness for s in specs for p in s.synths} == {"dark", "warm", "bright"}
    assert {s.mode for s in specs} == {"major", "minor"} and len({s.key for s in specs}) == 12
    assert len({s.describe() for s in specs}) == 200


def _f0(x: np.ndarray, sr: int) -> float:
    """Pitch by harmonic product spectrum (0.25 Hz bins, 50 Hz to 1 kHz)."""
    spectrum = np.abs(np.fft.rfft(x[: sr] * np.hanning(min(len(x), sr)), n=4 * sr))
    bins = np.arange(4 * 50, 4 * 1000)
    hps = spectrum[bins] * spectrum[2 * bins] * spectrum[3 * bins]
    return float(bins[np.argmax(hps)] / 4)


@pytest.mark.parametrize("voice", ["synth", "pluck", "piano"])
def test_instruments_play_the_written_pitch(voice):
    sr, rng = 32000, np.random.default_rng(0)
    note = Note(0.0, 1.0, 57, 0.8)  # A3 = 220 Hz
    if voice == "synth":
        part = sample_spec(0, 0).synths[0]
        from dataclasses import replace
        part = replace(part, oscillator="saw", vibrato_cents=0.0, cutoff_hz=3000.0, sustain=0.8)
        x = _synth_voice(note, part, sr, rng)
    elif voice == "pluck":
        x = _pluck_voice(note, sr, rng)
    else:
        x = _piano_voice(note, sr, rng)
    assert abs(_f0(x, sr) - 220.0) < 220.0 * 0.006  # within 10 cents


def test_source_loads_windows_of_the_rendered_track():
    src = SyntheticSource(num_tracks=3, seed=5, track_duration=6.0)
    assert len(src) == 3
    info = src.tracks()[1]
    whole = src.render(info.name, 16000)
    part = src.load(info.name, 16000, 2, offset=2.0, duration=3.0)
    np.testing.assert_array_equal(part.mix.numpy(), whole.mix[:, 32000:80000])
    np.testing.assert_array_equal(part.synth.numpy(), whole.synth[:, 32000:80000])
    assert part.description == info.description == whole.description


def test_two_part_tracks_give_each_part_with_its_own_description():
    source = SyntheticSource(num_tracks=12, seed=3, track_duration=6.0)
    two = [t for t in source.tracks() if t.parts]
    assert two and len(two) < 12  # some tracks have two synth parts, most have one
    for info in two[:2]:
        spec = sample_spec(3, int(info.name[-5:]), duration=6.0)
        assert [p.description for p in info.parts] == [part.describe() for part in spec.synths]
        assert len({part.role for part in spec.synths}) == 2  # of different roles
        audio = source.load(info.name, 16000, 2, offset=1.0, duration=4.0)
        assert set(audio.parts) == {"part1", "part2"}
        np.testing.assert_allclose((audio.parts["part1"] + audio.parts["part2"]).numpy(), audio.synth.numpy(),
                                   atol=1e-6)
        levels = [float(p.pow(2).mean().sqrt()) for p in audio.parts.values()]
        assert min(levels) > 1e-3  # both really play
    one = next(t for t in source.tracks() if not t.parts)
    assert source.load(one.name, 16000, 2, duration=1.0).parts == {}
    assert render_track(3, int(one.name[-5:]), duration=2.0).parts == []


def test_the_share_of_two_part_tracks_is_chosen_and_the_default_set_is_unchanged():
    default = SyntheticSource(num_tracks=40, seed=5, track_duration=6.0)
    assert 0 < sum(bool(t.parts) for t in default.tracks()) < 40
    assert [t.description for t in SyntheticSource(num_tracks=40, seed=5, track_duration=6.0, two_parts=0.3).tracks()] \
        == [t.description for t in default.tracks()]  # 0.3 is the default: the sets made before stay as they were
    every = SyntheticSource(num_tracks=40, seed=5, track_duration=6.0, two_parts=1.0)
    assert all(len(t.parts) == 2 for t in every.tracks())
    assert not any(SyntheticSource(num_tracks=40, seed=5, track_duration=6.0, two_parts=0.0).info(t.name).parts
                   for t in default.tracks())
    name = every.tracks()[0].name
    spec = sample_spec(5, int(name[-5:]), duration=6.0, two_parts=1.0)
    assert len({p.role for p in spec.synths}) == 2
    audio = every.load(name, 16000, 2)
    np.testing.assert_allclose(sum(audio.parts.values()).numpy(), audio.synth.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="two_parts"):
        SyntheticSource(num_tracks=2, two_parts=1.5)


def test_sampled_parts_are_described_by_their_program_role_and_register():
    source = SyntheticSource(num_tracks=12, seed=3, track_duration=6.0, soundfont=True)
    info = next(t for t in source.tracks() if t.parts)
    spec = sample_spec(3, int(info.name[-5:]), duration=6.0)
    for part, synth in zip(info.parts, spec.synths):
        assert part.description.endswith(f" {synth.role}, {synth.register} register")
        assert part.description.split(" " + synth.role + ",")[0] in info.description  # the program's name
