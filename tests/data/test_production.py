"""The production chain: each effect does what its doc says, the chain is deterministic per seed,
and the produced stems sum to the produced mix."""
from __future__ import annotations

import numpy as np
import pytest

from synthgen_lib.audio import codec_roundtrip
from synthgen_lib.data.production import (Compressor, Filter, Limiter, Production, Room, StemChain, compress,
                                          draw_production, equalise, limiter_gain, produce, production_names,
                                          reverberate, room_response, saturate, widen)

SR = 32_000


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.3, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([amp * np.sin(2 * np.pi * freq * t)] * channels)


def _db(x: np.ndarray, ref: np.ndarray) -> float:
    # steady state: skip the filters' first tenth of a second
    return 10 * np.log10(np.mean(x[:, SR // 10:] ** 2) / np.mean(ref[:, SR // 10:] ** 2))


@pytest.mark.parametrize("band, boosted, untouched", [
    (Filter("peak", 1000, 6.0, 1.0), 1000, 100),
    (Filter("lowshelf", 200, 6.0), 50, 5000),
    (Filter("highshelf", 6000, -6.0), 14000, 300),
])
def test_equaliser_bands_change_their_own_frequencies(band, boosted, untouched):
    near, far = _tone(boosted), _tone(untouched)
    assert _db(equalise(near, SR, (band,)), near) == pytest.approx(band.gain_db, abs=0.6)
    assert abs(_db(equalise(far, SR, (band,)), far)) < 0.6


def test_saturation_keeps_quiet_samples_and_rounds_off_peaks():
    x = _tone(220, amp=1.0)
    y = saturate(x, 9.0)
    quiet = np.abs(x) < 0.02
    assert np.allclose(y[quiet], x[quiet], rtol=0.01)
    crest = lambda s: np.abs(s).max() / np.sqrt(np.mean(s ** 2))  # noqa: E731
    assert crest(y) < 0.9 * crest(x)  # a sine 1.41, a square 1.0


def test_compressor_narrows_a_level_step_by_its_ratio():
    loud, quiet = _tone(440, 1.0, 0.5), _tone(440, 1.0, 0.05)  # a 20 dB step
    x = np.concatenate([quiet, loud, quiet], axis=1)
    comp = Compressor(threshold_db=-15.0, ratio=4.0, attack=0.005, release=0.05)
    y = compress(x, SR, comp)
    step = lambda s: 10 * np.log10(np.mean(s[:, int(1.5 * SR):int(1.9 * SR)] ** 2)  # noqa: E731
                                   / np.mean(s[:, int(0.5 * SR):int(0.9 * SR)] ** 2))
    assert step(x) == pytest.approx(20.0, abs=0.1)
    # the quiet part sits below the threshold (RMS -15 dB is above it): 20 dB becomes 20/4 above
    # the threshold plus the rest below it
    rms_db = 10 * np.log10(np.mean(x ** 2))
    threshold = rms_db - 15.0
    quiet_db = 10 * np.log10(np.mean(quiet ** 2))
    expected = (threshold - quiet_db) + (quiet_db + 20 - threshold) / 4
    assert step(y) == pytest.approx(expected, abs=1.0)


def test_room_decays_by_60_db_in_its_reverberation_time():
    room = Room(rt60=0.8, wet=0.3, predelay=0.02, damping=0.0, seed=3)
    ir = room_response(room, SR, 2)
    energy = np.convolve(ir[0] ** 2, np.ones(SR // 50) / (SR // 50), mode="same")
    start = int((room.predelay + 0.06) * SR)  # past the early reflections
    later = start + int(0.3 * SR)
    slope = 10 * np.log10(energy[later] / energy[start]) / 0.3  # dB per second
    assert -60 / slope == pytest.approx(room.rt60, rel=0.25)
    assert np.abs(ir[:, : int(room.predelay * SR)]).max() == 0.0  # the pre-delay is silent
    assert abs(np.corrcoef(ir[0], ir[1])[0, 1]) < 0.2  # the two channels are decorrelated


def test_reverb_adds_a_tail_after_the_sound_stops():
    x = np.zeros((2, SR))
    x[:, : SR // 10] = _tone(440, 0.1)
    y = reverberate(x, SR, Room(1.0, 0.3, 0.01, 0.3, seed=1))
    assert np.allclose(y[:, :300], x[:, :300])  # dry through the 10 ms pre-delay
    assert np.sqrt(np.mean(y[:, SR // 2:] ** 2)) > 1e-3 > np.sqrt(np.mean(x[:, SR // 2:] ** 2))


def test_width_scales_the_side_signal():
    x = np.stack([_tone(440)[0], _tone(660)[0]])
    mono = widen(x, 0.0)
    assert np.allclose(mono[0], mono[1])
    assert np.allclose(widen(x, 1.0), x)
    side = lambda s: s[0] - s[1]  # noqa: E731
    assert np.allclose(side(widen(x, 1.5)), 1.5 * side(x))


def test_limiter_holds_every_sample_under_its_ceiling_and_leaves_quiet_passages_alone():
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal((2, 2 * SR))
    x[:, SR: SR + 200] *= 15  # a loud burst
    lim = Limiter(drive_db=6.0, ceiling_db=-1.0, lookahead=0.005, release=0.1)
    y = x * limiter_gain(x, SR, lim)
    ceiling = 10 ** (-1.0 / 20)
    assert np.abs(y).max() <= ceiling + 1e-9
    drive = 10 ** (6 / 20) * ceiling / np.abs(x).max()
    assert np.allclose(y[:, : SR // 2], drive * x[:, : SR // 2])  # far from the burst: only the drive
    assert np.abs(y[:, SR: SR + 200]).max() > 0.9 * ceiling  # the burst is held at the ceiling


def test_codec_round_trip_keeps_length_and_loses_more_at_lower_rates():
    rng = np.random.default_rng(0)
    x = (0.2 * _tone(440) + 0.02 * rng.standard_normal((2, SR))).astype(np.float32)
    errors = {}
    for kbps in (128, 320):
        y = codec_roundtrip(x, SR, kbps)
        assert y.shape == x.shape
        errors[kbps] = np.mean((y - x) ** 2)
    assert 10 * np.log10(np.mean(x ** 2) / errors[320]) > 15  # aligned: no encoder delay
    assert errors[128] > 1.5 * errors[320]
    with pytest.raises(ValueError, match="bit rate"):
        codec_roundtrip(x, SR, 100)


def _stems(seconds: float = 2.0):
    rng = np.random.default_rng(1)
    n = int(seconds * SR)
    parts = [_tone(440, seconds, 0.2), _tone(880, seconds, 0.1)]
    return {"synth": parts[0] + parts[1], "00 piano": 0.1 * rng.standard_normal((2, n)),
            "drums": 0.3 * rng.standard_normal((2, n)) * (rng.uniform(size=n) > 0.95)}, parts


def test_produced_stems_sum_to_the_mix_and_the_synth_to_its_parts():
    stems, parts = _stems()
    production = draw_production(np.random.default_rng(5), production_names(list(stems), len(parts)))
    production = Production(production.stems, production.bus, production.limiter, 192)  # with the codec
    out, new_parts = produce(stems, parts, SR, production)
    assert set(out) == {"synth", "00 piano", "drums", "codec"}
    assert np.allclose(out["synth"], new_parts[0] + new_parts[1])
    mix = codec_roundtrip(sum(v for k, v in out.items() if k != "codec"), SR, 192)
    assert np.allclose(sum(out.values()), mix, atol=1e-6)  # the codec's error is a stem: the sum is the MP3
    assert not np.allclose(out["synth"], stems["synth"] * out["synth"].std() / stems["synth"].std())


def test_every_part_gets_its_own_strip():
    stems, parts = _stems()
    names = production_names(list(stems), len(parts))
    assert names == ["synth part1", "synth part2", "00 piano", "drums"]
    chains = dict.fromkeys(names, StemChain())
    chains["synth part2"] = StemChain(gain_db=-20.0)
    out, new_parts = produce(stems, parts, SR, Production(chains))
    ratio = np.sqrt(np.mean(new_parts[1] ** 2) / np.mean(new_parts[0] ** 2))
    assert ratio == pytest.approx(0.5 * 10 ** (-20 / 20), rel=0.01)


def test_chain_is_deterministic_per_seed():
    stems, parts = _stems()
    names = production_names(list(stems), len(parts))
    a = produce(stems, parts, SR, draw_production(np.random.default_rng(7), names))[0]
    b = produce(stems, parts, SR, draw_production(np.random.default_rng(7), names))[0]
    c = produce(stems, parts, SR, draw_production(np.random.default_rng(8), names))[0]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(k in c and np.allclose(a[k], c[k]) for k in a)


def test_without_a_limiter_the_mix_peaks_at_the_drawn_level():
    stems, parts = _stems()
    chains = dict.fromkeys(production_names(list(stems), len(parts)), StemChain())
    out, _ = produce(stems, parts, SR, Production(chains, peak=0.6))
    assert np.abs(sum(out.values())).max() == pytest.approx(0.6)


def test_a_produced_share_of_synthetic_tracks_sums_and_the_rest_is_unchanged():
    from synthgen_lib.data.synthetic import SyntheticSource

    plain = SyntheticSource(num_tracks=6, seed=21, track_duration=3.0)
    produced = SyntheticSource(num_tracks=6, seed=21, track_duration=3.0, production=0.5)
    changed = 0
    for info in plain.tracks():
        a, b = plain.render(info.name, SR), produced.render(info.name, SR)
        np.testing.assert_allclose(b.mix, np.sum(np.stack(list(b.stems.values())), axis=0), atol=1e-6)
        if not np.array_equal(a.mix, b.mix):
            changed += 1
            assert b.synth.shape == a.synth.shape and not np.allclose(a.synth, b.synth)
    assert 1 <= changed <= 5  # about half, drawn per track
    again = SyntheticSource(num_tracks=6, seed=21, track_duration=3.0, production=0.5)
    assert all(np.array_equal(again.render(t.name, SR).mix, produced.render(t.name, SR).mix) for t in plain.tracks())
    assert plain.settings().get("production") is None and produced.settings()["production"] == 0.5


def test_produced_scores_tracks_sum_to_the_mix(tmp_path):
    from music21 import note, stream

    from synthgen_lib.data.scores import ScoresSource

    score = stream.Score()
    for pitches in ([72, 74, 76, 77], [60, 62, 64, 65], [36, 38, 40, 41]):
        part = stream.Part()
        for p in pitches * 4:
            part.append(note.Note(p, quarterLength=1.0))
        score.append(part)
    score.write("midi", fp=str(tmp_path / "piece.mid"))
    src = ScoresSource(tmp_path, num_tracks=2, seed=4, track_duration=3.0, synth_voices="procedural", production=1.0)
    for info in src.tracks():
        track = src.render(info.name, SR)
        np.testing.assert_allclose(track.mix, np.sum(np.stack(list(track.stems.values())), axis=0), atol=1e-6)
        audio = src.load(info.name, SR, 2)
        assert np.allclose(audio.synth.numpy(), track.synth)


def test_cli_takes_a_production_share_and_refuses_it_where_mixes_are_finished(tmp_path, capsys):
    from synthgen_lib.cli import main

    from synthgen_lib.audio import load_audio

    out, plain = tmp_path / "set", tmp_path / "plain"
    for folder, share in ((out, "1"), (plain, "0")):
        assert main(["prepare", "--tracks", "2", "--track-duration", "3", "--seed", "5", "--production", share,
                     "--output", str(folder)]) == 0
    for wav in (out / "mix").glob("*.wav"):  # the option reaches the source: every mix is produced
        assert not np.allclose(load_audio(wav, sample_rate=None).numpy(),
                               load_audio(plain / "mix" / wav.name, sample_rate=None).numpy(), atol=1e-3)
    capsys.readouterr()
    assert main(["prepare", "--tracks", "3", "--track-duration", "3", "--seed", "5", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--production 1.0, not unset" in err and len(err.strip().splitlines()) == 1
    assert main(["prepare", "--source", "folder", "--root", str(out), "--production", "0.5"]) == 2
    assert "production chain is for" in capsys.readouterr().err
