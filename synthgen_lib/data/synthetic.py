"""Procedural synthetic multitracks: the embedded default dataset, no download needed.

Each track is a short piece of music in a random key, mode and tempo over a chord progression,
rendered stem by stem with numpy/scipy so that ``mix == sum(stems)`` exactly:

* **synth** (the target): one or two synthesizer parts. Each part draws its role (lead, pad,
  arp, pluck, chords), oscillator (saw, square, pulse, triangle, detuned saw stack, FM),
  resonant low-pass filter with its own envelope, amplitude envelope, register, vibrato and
  effects (chorus, delay, reverb, drive).
* **accompaniment**: instruments a separator can mistake for synths — drawbar organ (sine
  additive, sustained like a pad), piano (inharmonic partials, hammer noise), plucked guitar
  (Karplus-Strong), bowed strings (detuned bright sources through a body resonance with slow
  attack and vibrato, i.e. close to a saw pad), bass and drums — each with humanised timing and
  velocity, panning and room reverb.

The description of every track is written from the parameters actually used ("warm detuned
saw pad, slow attack, A minor, 96 bpm, with piano and drums"), so a text-conditioned model
learns words that mean something. Tracks are deterministic per ``(seed, index)``.

With a SoundFont (``soundfont=``, source kind ``sampled``) the same kind of scores are played by
recorded instrument samples instead (:mod:`.soundfont`): held-out mixes whose timbres the
procedural voices never made.
"""
from __future__ import annotations

import abc
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import signal

from ..errors import SynthGenError
from .production import draw_production, produce, production_names
from .soundfont import DRUM_KEYS, choose_programs, describe_sampled, describe_sampled_parts, find_soundfont, render_notes
from .tracks import PartInfo, TrackInfo, TrackSource

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {  # scale degrees (0 = tonic), one chord per harmonic step
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 0, 4), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2), (0, 2, 5, 4)),
}
OSCILLATORS = ("saw", "square", "pulse", "triangle", "detuned saw", "FM")
ROLES = ("lead", "pad", "arp", "pluck", "chords")
ACCOMPANIMENT = ("piano", "organ", "guitar", "strings", "bass", "drums")
EFFECTS = ("chorus", "delay", "reverb", "drive")

# Which register each role plays in (MIDI octave of its lowest notes) and its usual envelope.
_ROLE_OCTAVES = {"lead": (4, 5), "pad": (3, 4), "arp": (4, 5), "pluck": (4, 5), "chords": (3, 4)}


@dataclass(frozen=True)
class Note:
    """One note: onset and length in seconds, MIDI pitch (float allows detune), velocity 0..1."""

    start: float
    duration: float
    pitch: float
    velocity: float


@dataclass(frozen=True)
class SynthPartSpec:
    """Every parameter of one synthesizer part; :meth:`describe` turns them into words."""

    role: str
    oscillator: str
    octave: int
    voices: int
    detune_cents: float
    pulse_width: float
    fm_ratio: float
    fm_index: float
    cutoff_hz: float
    resonance: float
    filter_env_octaves: float
    attack: float
    decay: float
    sustain: float
    release: float
    vibrato_cents: float
    vibrato_rate: float
    effects: tuple[str, ...]
    pan: float
    level_db: float

    @property
    def brightness(self) -> str:
        """'dark', 'warm' or 'bright', from the filter cutoff."""
        if self.cutoff_hz < 1200:
            return "dark"
        return "warm" if self.cutoff_hz < 3500 else "bright"

    @property
    def attack_word(self) -> str:
        """'fast', 'medium' or 'slow', from the attack time."""
        if self.attack < 0.02:
            return "fast"
        return "medium" if self.attack < 0.2 else "slow"

    @property
    def register(self) -> str:
        """'low', 'mid' or 'high', from the part's octave."""
        return {3: "low", 4: "mid"}.get(self.octave, "high")

    def describe(self) -> str:
        """E.g. 'warm detuned saw pad, slow attack, with vibrato and chorus'."""
        words = f"{self.brightness} {self.oscillator} {self.role}"
        extras = (["vibrato"] if self.vibrato_cents > 0 else []) + list(self.effects)
        text = f"{words}, {self.register} register, {self.attack_word} attack"
        if extras:
            text += ", with " + _join(extras)
        return text


@dataclass(frozen=True)
class TrackSpec:
    """The musical and sound parameters of one synthetic track."""

    seed: int
    index: int
    duration: float
    sample_rate: int
    channels: int
    key: int
    mode: str
    bpm: int
    progression: tuple[int, ...]
    bars_per_chord: int
    synths: tuple[SynthPartSpec, ...]
    accompaniment: tuple[str, ...]
    drum_pattern: str

    @property
    def key_name(self) -> str:
        """E.g. 'A minor'."""
        return f"{NOTE_NAMES[self.key]} {self.mode}"

    def describe(self) -> str:
        """The track's description, built only from its parameters."""
        parts = [p.describe() for p in self.synths]
        text = parts[0]
        if len(parts) > 1:
            text += "; plus " + "; ".join(parts[1:])
        text += f"; {self.key_name}, {self.bpm} bpm"
        if self.accompaniment:
            text += ", with " + _join(list(self.accompaniment))
        return text


@dataclass
class SyntheticTrack:
    """A rendered track: ``mix == sum(stems.values())``; ``stems['synth']`` is the target.

    All audio is float32 ``(channels, samples)``. ``parts`` holds each synth part on its own
    (summing to the synth up to float32 rounding) when there are two or more.
    """

    name: str
    spec: TrackSpec
    stems: dict[str, np.ndarray]
    mix: np.ndarray = field(repr=False)
    sampled: bool = False  # played by a SoundFont rather than the procedural voices
    parts: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def synth(self) -> np.ndarray:
        return self.stems["synth"]

    @property
    def description(self) -> str:
        return describe_sampled(self.spec) if self.sampled else self.spec.describe()


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def track_name(seed: int, index: int, sampled: bool = False) -> str:
    """The stable name of synthetic track ``index`` of the set made with ``seed``
    (``sampled_...`` when a SoundFont plays it)."""
    return f"{'sampled' if sampled else 'synthetic'}_s{seed}_{index:05d}"


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

def _synth_part(rng: np.random.Generator, role: str) -> SynthPartSpec:
    osc = str(rng.choice(OSCILLATORS))
    if role == "pad":
        attack, decay, sustain, release = rng.uniform(0.2, 1.2), rng.uniform(0.3, 1.5), rng.uniform(0.6, 0.9), rng.uniform(0.4, 1.5)
    elif role in ("pluck", "arp"):
        attack, decay, sustain, release = rng.uniform(0.001, 0.012), rng.uniform(0.08, 0.4), rng.uniform(0.0, 0.4), rng.uniform(0.05, 0.3)
    elif role == "chords":
        attack, decay, sustain, release = rng.uniform(0.002, 0.05), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.3)
    else:  # lead
        attack, decay, sustain, release = rng.uniform(0.003, 0.15), rng.uniform(0.1, 0.6), rng.uniform(0.5, 0.9), rng.uniform(0.05, 0.4)
    effects = tuple(e for e, p in zip(EFFECTS, (0.35, 0.35, 0.5, 0.2)) if rng.random() < p)
    vibrato = rng.uniform(8, 30) if role == "lead" and rng.random() < 0.6 else (
        rng.uniform(4, 12) if rng.random() < 0.15 else 0.0)
    lo, hi = _ROLE_OCTAVES[role]
    return SynthPartSpec(
        role=role, oscillator=osc, octave=int(rng.integers(lo, hi + 1)),
        voices=int(rng.integers(3, 8)) if osc == "detuned saw" else 1,
        detune_cents=float(rng.uniform(6, 25)) if osc == "detuned saw" else 0.0,
        pulse_width=float(rng.uniform(0.1, 0.35)) if osc == "pulse" else 0.5,
        fm_ratio=float(rng.choice([0.5, 1.0, 2.0, 3.0, 3.5])) if osc == "FM" else 0.0,
        fm_index=float(rng.uniform(0.8, 5.0)) if osc == "FM" else 0.0,
        cutoff_hz=float(np.exp(rng.uniform(np.log(600), np.log(9000)))),
        resonance=float(rng.uniform(0.7, 4.0)),
        filter_env_octaves=float(rng.uniform(0, 3.5)) if rng.random() < 0.7 else 0.0,
        attack=float(attack), decay=float(decay), sustain=float(sustain), release=float(release),
        vibrato_cents=float(vibrato), vibrato_rate=float(rng.uniform(4.5, 6.5)) if vibrato else 0.0,
        effects=effects, pan=float(rng.uniform(-0.5, 0.5)), level_db=float(rng.uniform(-9, 3)),
    )


TWO_PARTS = 0.3
"""Share of synthetic tracks whose synth has two parts (of different roles) by default."""


def sample_spec(seed: int, index: int, duration: float = 30.0, sample_rate: int = 32_000,
                channels: int = 2, two_parts: float = TWO_PARTS) -> TrackSpec:
    """Draw the parameters of track ``index`` of the set made with ``seed`` (deterministic);
    with chance ``two_parts`` its synth has a second part of another role."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    mode = str(rng.choice(("major", "minor")))
    progs = PROGRESSIONS[mode]
    roles = [str(rng.choice(ROLES))]
    if rng.random() < two_parts:
        roles.append(str(rng.choice([r for r in ROLES if r != roles[0]])))
    synths = tuple(_synth_part(rng, r) for r in roles)
    pitched = [a for a in ("piano", "organ", "guitar", "strings") if rng.random() < 0.45]
    if not pitched:
        pitched = [str(rng.choice(("piano", "organ", "guitar", "strings")))]
    accompaniment = tuple(pitched + [a for a in ("bass", "drums") if rng.random() < 0.8])
    return TrackSpec(
        seed=int(seed), index=int(index), duration=float(duration), sample_rate=int(sample_rate),
        channels=int(channels), key=int(rng.integers(0, 12)), mode=mode,
        bpm=int(rng.integers(70, 151)), progression=tuple(progs[int(rng.integers(len(progs)))]),
        bars_per_chord=int(rng.choice((1, 1, 2))), synths=synths, accompaniment=accompaniment,
        drum_pattern=str(rng.choice(tuple(_DRUM_PATTERNS))),
    )


# --------------------------------------------------------------------------------------------
# Music: notes for each part
# --------------------------------------------------------------------------------------------

class _Harmony:
    """Maps bars to chords and scale degrees to MIDI pitches for one track."""

    def __init__(self, spec: TrackSpec):
        self.spec = spec
        self.beat = 60.0 / spec.bpm
        self.bar = 4 * self.beat
        self.n_bars = int(np.ceil(spec.duration / self.bar))
        self.scale = SCALES[spec.mode]

    def pitch(self, degree: int, octave: int) -> int:
        return 12 * (octave + 1) + self.spec.key + self.scale[degree % 7] + 12 * (degree // 7)

    def chord_degree(self, bar: int) -> int:
        prog = self.spec.progression
        return prog[(bar // self.spec.bars_per_chord) % len(prog)]

    def chord(self, bar: int, octave: int, size: int = 3) -> list[int]:
        root = self.chord_degree(bar)
        return [self.pitch(root + 2 * i, octave) for i in range(size)]


def _active_bars(rng: np.random.Generator, n_bars: int) -> np.ndarray:
    """Arrangement: most parts play throughout; some enter late or drop out for a section."""
    active = np.ones(n_bars, bool)
    r = rng.random()
    if r < 0.2:
        active[: int(rng.integers(1, 3))] = False
    elif r < 0.35 and n_bars > 6:
        start = int(rng.integers(2, n_bars - 2))
        active[start: start + int(rng.integers(1, 3))] = False
    return active


def _human(rng: np.random.Generator, t: float, vel: float, jitter: float = 0.008) -> tuple[float, float]:
    return max(0.0, t + rng.normal(0, jitter)), float(np.clip(vel + rng.normal(0, 0.08), 0.15, 1.0))


def _synth_notes(rng, h: _Harmony, part: SynthPartSpec) -> list[Note]:
    notes: list[Note] = []
    b = h.beat
    active = _active_bars(rng, h.n_bars)
    o = part.octave
    if part.role == "pad":
        for bar in range(0, h.n_bars, h.spec.bars_per_chord):
            if not active[bar]:
                continue
            size = int(rng.choice((3, 4)))
            for p in h.chord(bar, o, size):
                notes.append(Note(bar * h.bar, h.bar * h.spec.bars_per_chord * 0.98, p, 0.7))
    elif part.role == "arp":
        step = b * float(rng.choice((0.25, 0.5)))
        shape = str(rng.choice(("up", "down", "updown", "random")))
        gate = float(rng.uniform(0.4, 0.9))
        for bar in range(h.n_bars):
            if not active[bar]:
                continue
            tones = h.chord(bar, o, 3) + h.chord(bar, o + 1, 2)
            seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}.get(shape)
            for i in range(int(round(h.bar / step))):
                p = seq[i % len(seq)] if seq else int(rng.choice(tones))
                t, v = _human(rng, bar * h.bar + i * step, 0.75 if i % 4 == 0 else 0.6, 0.003)
                notes.append(Note(t, step * gate, p, v))
    elif part.role == "pluck":
        pattern = [s for s in range(16) if rng.random() < 0.45] or [0, 6, 10]
        for bar in range(h.n_bars):
            if not active[bar]:
                continue
            tones = h.chord(bar, o, 3) + [h.pitch(h.chord_degree(bar) + 7, o)]
            for s in pattern:
                t, v = _human(rng, bar * h.bar + s * b / 4, 0.7, 0.004)
                notes.append(Note(t, b / 4 * 0.8, int(rng.choice(tones)), v))
    elif part.role == "chords":
        patterns = ((2, 6, 10, 14), (0, 6, 12), (0, 3, 6, 10), (4, 12), (0, 8, 11))
        pattern = patterns[int(rng.integers(len(patterns)))]
        length = b * float(rng.uniform(0.25, 0.9))
        for bar in range(h.n_bars):
            if not active[bar]:
                continue
            for s in pattern:
                t, v = _human(rng, bar * h.bar + s * b / 4, 0.7)
                for p in h.chord(bar, o, 3):
                    notes.append(Note(t, length, p, v))
    else:  # lead: a melody walking the scale, chord tones on strong beats, with rests
        rhythms = ((1, 1, 1, 1), (2, 1, 1), (1.5, 0.5, 2), (0.5, 0.5, 1, 2), (3, 1), (1, 0.5, 0.5, 2), (4,))
        degree = int(rng.integers(0, 7))
        for bar in range(h.n_bars):
            if not active[bar] or rng.random() < 0.12:
                continue
            t_beat = 0.0
            for dur in rhythms[int(rng.integers(len(rhythms)))]:
                if t_beat == 0 or rng.random() < 0.3:  # strong beat: move to a chord tone
                    root = h.chord_degree(bar)
                    degree = int(min((root + 2 * i + 7 * k for i in range(3) for k in (-1, 0, 1)),
                                     key=lambda d: abs(d - degree)))
                else:
                    degree += int(rng.choice((-2, -1, -1, 1, 1, 2)))
                degree = int(np.clip(degree, -3, 11))
                if rng.random() > 0.1:
                    t, v = _human(rng, bar * h.bar + t_beat * b, 0.75)
                    notes.append(Note(t, dur * b * 0.95, h.pitch(degree, o), v))
                t_beat += dur
    return [n for n in notes if n.start < h.spec.duration]


def _accompaniment_notes(rng, h: _Harmony, instrument: str) -> list[Note]:
    notes: list[Note] = []
    b = h.beat
    for bar in range(h.n_bars):
        t0 = bar * h.bar
        if instrument == "piano":
            hits = ((0, 2), (0, 1.5, 2.5), (0, 1, 2, 3), (0, 0.5, 2, 3.5))[bar % 2 * 2 % 4]
            for beat in hits:
                t, v = _human(rng, t0 + beat * b, 0.6)
                notes.append(Note(t, b * 0.9, h.chord(bar, 2, 1)[0], v))  # left hand root
                for p in h.chord(bar, 4, 3):
                    notes.append(Note(t + rng.uniform(0, 0.01), b * 0.9, p, v * 0.8))
        elif instrument in ("organ", "strings"):
            if bar % h.spec.bars_per_chord == 0:
                for p in h.chord(bar, 3 if instrument == "organ" else 4, 3):
                    notes.append(Note(t0, h.bar * h.spec.bars_per_chord * 0.97, p, 0.6))
        elif instrument == "guitar":
            chord = h.chord(bar, 3, 3) + h.chord(bar, 4, 2)
            for beat in (0, 1, 1.5, 2.5, 3):
                t, v = _human(rng, t0 + beat * b, 0.65)
                down = beat == int(beat)
                for i, p in enumerate(chord if down else chord[::-1]):
                    notes.append(Note(t + i * 0.012, b * 0.9, p, v * (1 - 0.05 * i)))
        elif instrument == "bass":
            root = h.chord(bar, 2, 1)[0]
            for beat, interval in ((0, 0), (1.5, 0), (2, 7), (3, 12 if rng.random() < 0.5 else 0)):
                t, v = _human(rng, t0 + beat * b, 0.8)
                notes.append(Note(t, b * 0.85, root + interval, v))
    return [n for n in notes if n.start < h.spec.duration]


_DRUM_PATTERNS = {  # 16 steps per bar: (kick, snare, closed hat, open hat)
    "rock": ((0, 8, 10), (4, 12), tuple(range(0, 16, 2)), ()),
    "four on the floor": ((0, 4, 8, 12), (4, 12), tuple(range(16)), (2, 6, 10, 14)),
    "hip hop": ((0, 7, 10), (4, 12), tuple(range(0, 16, 2)), (14,)),
    "half time": ((0, 10), (8,), tuple(range(0, 16, 2)), ()),
    "breakbeat": ((0, 10, 11), (4, 12, 15), tuple(range(0, 16, 2)), (7,)),
}


# --------------------------------------------------------------------------------------------
# Sound: oscillators, envelopes, filters, voices
# --------------------------------------------------------------------------------------------

def _hz(pitch: float | np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def _polyblep(phase: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Band-limiting correction at the saw's discontinuity (keeps aliasing low)."""
    out = np.zeros_like(phase)
    m = phase < dt
    x = phase[m] / dt[m]
    out[m] = 2 * x - x * x - 1
    m = phase > 1 - dt
    x = (phase[m] - 1) / dt[m]
    out[m] = x * x + 2 * x + 1
    return out


def _saw(phase: np.ndarray, dt: np.ndarray) -> np.ndarray:
    return 2 * phase - 1 - _polyblep(phase, dt)


def _oscillator(kind: str, freq: np.ndarray, sr: int, rng, part: SynthPartSpec | None = None,
                env: np.ndarray | None = None) -> np.ndarray:
    dt = np.minimum(freq / sr, 0.49)
    phase = (rng.random() + np.cumsum(dt)) % 1.0
    if kind == "saw":
        return _saw(phase, dt)
    if kind in ("square", "pulse"):
        width = 0.5 if part is None else part.pulse_width
        return 0.5 * (_saw(phase, dt) - _saw((phase + 1 - width) % 1.0, dt))
    if kind == "triangle":
        return 1.0 - 4.0 * np.abs(phase - 0.5)
    if kind == "FM":
        mod_phase = (part.fm_ratio * np.cumsum(dt)) % 1.0
        index = part.fm_index * (0.3 + 0.7 * (env if env is not None else 1.0))
        return np.sin(2 * np.pi * phase + index * np.sin(2 * np.pi * mod_phase))
    if kind == "sine":
        return np.sin(2 * np.pi * phase)
    raise ValueError(f"unknown oscillator {kind!r}")


def _adsr(n_on: int, n: int, sr: int, a: float, d: float, s: float, r: float) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.where(t < a, t / max(a, 1e-4), s + (1 - s) * np.exp(-(t - a) / max(d / 4, 1e-3)))
    t_off = n_on / sr
    level = float(min(t_off / max(a, 1e-4), 1.0)) if t_off < a else s + (1 - s) * np.exp(-(t_off - a) / max(d / 4, 1e-3))
    env = np.where(t >= t_off, level * np.exp(-(t - t_off) / max(r / 5, 1e-3)), env)
    return env


def _lowpass(x: np.ndarray, sr: int, cutoff: np.ndarray | float, q: float, block: int = 256) -> np.ndarray:
    """Resonant 2-pole low-pass (RBJ biquad); a cutoff array sweeps it block by block."""
    cut = np.broadcast_to(np.asarray(cutoff, dtype=np.float64), x.shape)
    if np.ptp(cut) < 1.0:
        return signal.lfilter(*_biquad(float(cut[0]), sr, q), x)
    out = np.empty_like(x)
    zi = np.zeros(2)
    for i in range(0, len(x), block):
        b, a = _biquad(float(cut[i]), sr, q)
        out[i: i + block], zi = signal.lfilter(b, a, x[i: i + block], zi=zi)
    return out


def _biquad(fc: float, sr: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    w0 = 2 * np.pi * min(max(fc, 30.0), 0.45 * sr) / sr
    alpha, cw = np.sin(w0) / (2 * q), np.cos(w0)
    b = np.array([(1 - cw) / 2, 1 - cw, (1 - cw) / 2])
    a = np.array([1 + alpha, -2 * cw, 1 - alpha])
    return b / a[0], a / a[0]


def _synth_voice(note: Note, part: SynthPartSpec, sr: int, rng) -> np.ndarray:
    n_on = max(1, int(note.duration * sr))
    n = n_on + int(part.release * sr * 1.2)
    env = _adsr(n_on, n, sr, part.attack, part.decay, part.sustain, part.release)
    t = np.arange(n) / sr
    cents = np.zeros(n)
    if part.vibrato_cents:
        cents = part.vibrato_cents * np.minimum(t / 0.3, 1.0) * np.sin(2 * np.pi * part.vibrato_rate * t)
    if part.oscillator == "detuned saw":
        offsets = np.linspace(-part.detune_cents, part.detune_cents, part.voices)
        x = sum(_oscillator("saw", _hz(note.pitch + (cents + c) / 100), sr, rng) for c in offsets)
        x = x / np.sqrt(part.voices)
    else:
        x = _oscillator(part.oscillator, _hz(note.pitch + cents / 100), sr, rng, part, env)
    f0 = float(_hz(note.pitch))
    cutoff = np.maximum(part.cutoff_hz, 1.5 * f0)
    if part.filter_env_octaves:
        fenv = _adsr(n_on, n, sr, min(part.attack, 0.05), part.decay, 0.2, part.release)
        cutoff = cutoff * 2.0 ** (part.filter_env_octaves * fenv * (0.5 + 0.5 * note.velocity))
    x = _lowpass(x, sr, cutoff, part.resonance)
    return x * env * note.velocity


def _piano_voice(note: Note, sr: int, rng) -> np.ndarray:
    f0 = float(_hz(note.pitch))
    n_on = int(note.duration * sr)
    n = n_on + int(0.25 * sr)
    t = (np.arange(n) / sr).astype(np.float32)
    k = np.arange(1, min(12, int(0.45 * sr / f0)) + 1, dtype=np.float32)[:, None]
    inharm = 1.5e-4 * (f0 / 261.6) ** 0.5
    fk = k * f0 * np.sqrt(1 + inharm * k ** 2)
    tau = 2.5 * (261.6 / f0) ** 0.6 / (1 + 0.35 * k)
    bright = 0.6 + 0.8 * note.velocity
    amp = (1.0 / k ** (2.2 - bright)) * (0.6 * np.exp(-t / (0.15 * tau)) + 0.4 * np.exp(-t / tau))
    # Two strings per note, slightly apart: their beating is a slow cosine on each partial.
    beat_hz = np.float32(rng.uniform(0.3, 1.2) * 1e-3 * f0) * k
    x = (amp * np.sin(np.float32(2 * np.pi) * fk * t) * np.cos(np.float32(np.pi) * beat_hz * t)).sum(0)
    damper = np.where(t > note.duration, np.exp(-(t - note.duration) / 0.06), 1.0)
    hammer = rng.standard_normal(n) * np.exp(-t / 0.004) * 0.3
    hammer = signal.lfilter(*_biquad(min(4 * f0, 6000), sr, 0.7), hammer)
    return (x + hammer) * damper * note.velocity


def _organ_voice(note: Note, sr: int, rng) -> np.ndarray:
    n_on = int(note.duration * sr)
    n = n_on + int(0.08 * sr)
    t = np.arange(n) / sr
    f0 = float(_hz(note.pitch))
    drawbars = ((0.5, 0.6), (1, 1.0), (1.5, 0.5), (2, 0.7), (3, 0.35), (4, 0.4), (6, 0.15), (8, 0.2))
    x = sum(level * np.sin(2 * np.pi * f0 * ratio * t) for ratio, level in drawbars if f0 * ratio < 0.45 * sr)
    rotary = 1 + 0.15 * np.sin(2 * np.pi * 6.5 * t + rng.random() * 6.28)
    env = np.clip(np.minimum(t / 0.01, 1.0) * np.where(t > note.duration, 1 - (t - note.duration) / 0.08, 1.0), 0, 1)
    click = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.1
    return (x * rotary * env / 3 + click) * note.velocity


def _string_voice(note: Note, sr: int, rng) -> np.ndarray:
    """Bowed string section: detuned bright sources, vibrato, body resonances, slow bow attack."""
    n_on = int(note.duration * sr)
    n = n_on + int(0.4 * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for _ in range(3):
        vib = 15 * np.sin(2 * np.pi * rng.uniform(5, 6.5) * t + rng.random() * 6.28) * np.minimum(t / 0.5, 1)
        x += _oscillator("saw", _hz(note.pitch + (vib + rng.uniform(-8, 8)) / 100), sr, rng)
    for fc, q in ((280, 2.0), (1100, 3.0), (2800, 2.5)):  # body formants
        b, a = signal.iirpeak(fc, q, fs=sr)
        x = x + 0.8 * signal.lfilter(b, a, x)
    x = signal.lfilter(*_biquad(4500, sr, 0.7), x)
    x += 0.02 * rng.standard_normal(n)  # bow noise
    env = _adsr(n_on, n, sr, rng.uniform(0.15, 0.4), 0.5, 0.85, 0.35)
    return x * env * note.velocity / 6


def _pluck_voice(note: Note, sr: int, rng, damping: float = 0.996, bright: float = 0.5) -> np.ndarray:
    """Karplus-Strong string, computed a period at a time."""
    period = sr / float(_hz(note.pitch))
    n_per = int(period - 0.5)
    w = period - 0.5 - n_per  # fractional delay through the averaging weights
    n_on = int(note.duration * sr)
    n = n_on + int(0.1 * sr)
    head = n_per + 2
    y = np.zeros(n + head)
    y[:head] = signal.lfilter([bright, 1 - bright], [1], rng.uniform(-1, 1, head))  # pick tone
    decay = np.full(len(y), damping)
    decay[n_on + head:] = 0.9  # note off: fingers damp the string
    a, b, c = (1 - w) * 0.5, 0.5, w * 0.5  # y[i] = g (a y[i-N] + b y[i-N-1] + c y[i-N-2])
    for i in range(head, len(y), n_per):
        m = min(n_per, len(y) - i)
        y[i: i + m] = decay[i: i + m] * (a * y[i - n_per: i - n_per + m]
                                         + b * y[i - n_per - 1: i - n_per - 1 + m]
                                         + c * y[i - n_per - 2: i - n_per - 2 + m])
    return y[head: head + n] * note.velocity


def _drum_kit(sr: int, rng) -> dict[str, np.ndarray]:
    def t(seconds):
        return np.arange(int(seconds * sr)) / sr

    tk = t(0.5)
    f_start, f_end = rng.uniform(120, 180), rng.uniform(45, 60)
    kick = np.sin(2 * np.pi * np.cumsum(f_end + (f_start - f_end) * np.exp(-tk / 0.03)) / sr)
    kick = kick * np.exp(-tk / rng.uniform(0.15, 0.35)) + 0.3 * rng.standard_normal(len(tk)) * np.exp(-tk / 0.002)
    ts = t(0.35)
    noise = signal.sosfilt(signal.butter(2, (1500, min(9000, 0.45 * sr)), "bandpass", fs=sr, output="sos"),
                           rng.standard_normal(len(ts)))
    snare = 0.6 * np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.06) + 1.5 * noise * np.exp(-ts / rng.uniform(0.08, 0.15))
    th = t(0.4)
    hiss = signal.sosfilt(signal.butter(4, min(7000, 0.4 * sr), "highpass", fs=sr, output="sos"),
                          rng.standard_normal(len(th)))
    return {"kick": kick, "snare": snare * 0.7, "hat": 0.35 * hiss * np.exp(-th / 0.025),
            "open": 0.3 * hiss * np.exp(-th / 0.2)}


# --------------------------------------------------------------------------------------------
# Effects and mixing
# --------------------------------------------------------------------------------------------

def _place(notes: list[Note], voice, n: int, sr: int, rng) -> np.ndarray:
    """Render ``notes`` with ``voice(note)`` into a mono buffer of ``n`` samples.

    Identical notes (same pitch, length and velocity step) are rendered once and reused.
    """
    out = np.zeros(n)
    cache: dict[tuple, np.ndarray] = {}
    for note in notes:
        key = (round(note.pitch, 2), round(note.duration, 3), round(note.velocity, 1))
        if key not in cache:
            cache[key] = voice(Note(0.0, key[1], key[0], key[2]))
        x = cache[key]
        i = int(note.start * sr)
        m = min(len(x), n - i)
        if m > 0:
            out[i: i + m] += x[:m]
    return out


def _pan(x: np.ndarray, pan: float, channels: int) -> np.ndarray:
    if channels == 1:
        return x[None]
    angle = (pan + 1) * np.pi / 4  # constant power
    return np.stack([np.cos(angle) * x, np.sin(angle) * x]) * np.sqrt(2)


def _chorus(x: np.ndarray, sr: int, rng) -> np.ndarray:
    n = x.shape[-1]
    t = np.arange(n) / sr
    out = np.empty_like(x)
    rate, depth, base = rng.uniform(0.3, 1.2), rng.uniform(0.001, 0.003), rng.uniform(0.007, 0.015)
    for c in range(x.shape[0]):
        delay = (base + depth * np.sin(2 * np.pi * rate * t + c * np.pi / 2)) * sr
        out[c] = x[c] + 0.7 * np.interp(np.arange(n) - delay, np.arange(n), x[c], left=0.0)
    return out / 1.4


def _delay(x: np.ndarray, sr: int, bpm: int, rng) -> np.ndarray:
    d = int(60 / bpm * float(rng.choice((0.5, 0.75, 1.0))) * sr)
    fb, wet = rng.uniform(0.25, 0.5), rng.uniform(0.2, 0.4)
    out = x.copy()
    for k in range(1, 7):
        if k * d >= x.shape[-1]:
            break
        src = x if x.shape[0] == 1 else x[::-1] if k % 2 else x  # ping-pong in stereo
        out[:, k * d:] += wet * fb ** (k - 1) * src[:, : x.shape[-1] - k * d]
    return out


def _reverb(x: np.ndarray, sr: int, rng, rt60: float, wet: float) -> np.ndarray:
    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal((x.shape[0], n_ir)) * np.exp(-6.91 * t / rt60)
    ir = signal.lfilter([0.4], [1, -0.6], ir, axis=-1)  # air absorbs the highs
    ir /= np.sqrt((ir ** 2).sum(-1, keepdims=True))
    ir[:, : int(0.01 * sr)] = 0  # pre-delay
    tail = signal.fftconvolve(x.astype(np.float32), ir.astype(np.float32), axes=-1)[:, : x.shape[-1]]
    return x + wet * tail


def synth_effects(x: np.ndarray, part: SynthPartSpec, sr: int, bpm: float, rng, channels: int) -> np.ndarray:
    """A mono synth part ``x`` through ``part``'s drive, panning, chorus, delay and reverb, at
    ``part.level_db`` re RMS 1: ``(channels, samples)``."""
    if "drive" in part.effects:
        x = np.tanh(3.0 * x / (np.abs(x).max() + 1e-9))
    x = _pan(x / _rms(x), part.pan, channels)
    if "chorus" in part.effects:
        x = _chorus(x, sr, rng)
    if "delay" in part.effects:
        x = _delay(x, sr, bpm, rng)
    if "reverb" in part.effects:
        x = _reverb(x, sr, rng, rt60=float(rng.uniform(1.0, 3.0)), wet=float(rng.uniform(0.2, 0.5)))
    return x / _rms(x) * 10 ** (part.level_db / 20)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)) + 1e-9)


def render_track(seed: int = 0, index: int = 0, duration: float = 30.0, sample_rate: int = 32_000,
                 channels: int = 2, soundfont: str | Path | None = None,
                 two_parts: float = TWO_PARTS) -> SyntheticTrack:
    """Render synthetic track ``index`` of the set made with ``seed``.

    Args:
        seed: the dataset seed; with ``index`` it fixes every parameter and sample.
        index: which track of the set.
        duration: length in seconds.
        sample_rate: rate in Hz of the rendered audio.
        channels: 1 (mono) or 2 (stereo).
        soundfont: a GM SoundFont (``.sf2``) to play every part with through FluidSynth
            instead of the procedural voices (see :mod:`.soundfont`); the score, levels,
            panning and effects are drawn the same way.
        two_parts: chance that the synth has two parts (see :func:`sample_spec`).
    Returns:
        A :class:`SyntheticTrack` whose ``mix`` is exactly the sum of its ``stems``.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    spec = sample_spec(seed, index, duration, sample_rate, channels, two_parts)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 1]))
    h = _Harmony(spec)
    sr, n = sample_rate, int(round(duration * sample_rate))
    room_rt60 = float(rng.uniform(0.4, 1.6))
    programs = choose_programs(spec) if soundfont is not None else {}

    synth, parts = np.zeros((channels, n)), []
    for i, part in enumerate(spec.synths):
        notes = _synth_notes(rng, h, part)
        if soundfont is not None:
            x = render_notes(notes, programs[f"synth{i}"], n, sr, soundfont)
        else:
            x = _place(notes, lambda nt, p=part: _synth_voice(nt, p, sr, rng), n, sr, rng)
        parts.append(synth_effects(x, part, sr, spec.bpm, rng, channels))
        synth += parts[-1]

    stems: dict[str, np.ndarray] = {}
    voices = {
        "piano": lambda nt: _piano_voice(nt, sr, rng),
        "organ": lambda nt: _organ_voice(nt, sr, rng),
        "strings": lambda nt: _string_voice(nt, sr, rng),
        "guitar": lambda nt: _pluck_voice(nt, sr, rng, 0.996, rng.uniform(0.3, 0.7)),
        "bass": lambda nt: signal.lfilter(*_biquad(900, sr, 0.9), _pluck_voice(nt, sr, rng, 0.998, 0.2)),
    }
    levels = {"drums": 0.0, "bass": -2.0, "piano": -5.0, "organ": -7.0, "guitar": -6.0, "strings": -6.0}
    for inst in spec.accompaniment:
        if inst == "drums":
            kit = _drum_kit(sr, rng)
            kick, snare, hat, opn = _DRUM_PATTERNS[spec.drum_pattern]
            hits = [Note(bar * h.bar + s * h.beat / 4, 0, {"kick": 0, "snare": 1, "hat": 2, "open": 3}[name], 1.0)
                    for bar in range(h.n_bars)
                    for name, steps in (("kick", kick), ("snare", snare), ("hat", hat), ("open", opn))
                    for s in steps]
            names = ("kick", "snare", "hat", "open")
            x, played = np.zeros(n), []
            for hit in hits:
                t, v = _human(rng, hit.start, 0.85 if names[int(hit.pitch)] != "hat" else 0.5, 0.004)
                if soundfont is not None:
                    played.append(Note(t, 0.2, DRUM_KEYS[names[int(hit.pitch)]], v))
                    continue
                sample = kit[names[int(hit.pitch)]] * v
                i = int(t * sr)
                m = min(len(sample), n - i)
                if m > 0:
                    x[i: i + m] += sample[:m]
            if soundfont is not None:
                x = render_notes(played, 0, n, sr, soundfont, drums=True)
            pan = 0.0
        elif soundfont is not None:
            x = render_notes(_accompaniment_notes(rng, h, inst), programs[inst], n, sr, soundfont)
            pan = 0.0 if inst == "bass" else float(rng.uniform(-0.7, 0.7))
        else:
            x = _place(_accompaniment_notes(rng, h, inst), voices[inst], n, sr, rng)
            pan = 0.0 if inst == "bass" else float(rng.uniform(-0.7, 0.7))
        x = _pan(x / _rms(x), pan, channels)
        if inst != "bass":
            x = _reverb(x, sr, rng, rt60=room_rt60, wet=float(rng.uniform(0.1, 0.3)))
        stems[inst] = x / _rms(x) * 10 ** ((levels[inst] + rng.uniform(-3, 3)) / 20)

    # Balance synth against the accompaniment, then one gain for everything so the mix peaks
    # below full scale: the stems keep summing to the mix exactly.
    accomp_rms = _rms(sum(stems.values())) if stems else 1.0
    level = 10 ** (rng.uniform(-6, 3) / 20)
    stems = {"synth": synth / _rms(synth) * accomp_rms * level, **stems}
    parts = [p / _rms(synth) * accomp_rms * level for p in parts] if len(parts) > 1 else []
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    mix = np.sum(np.stack(list(stems.values())), axis=0, dtype=np.float64)
    gain = float(rng.uniform(0.5, 0.95)) / (np.abs(mix).max() + 1e-9)
    stems = {k: (v * gain).astype(np.float32) for k, v in stems.items()}
    mix = np.sum(np.stack(list(stems.values())), axis=0, dtype=np.float32)
    return SyntheticTrack(name=track_name(seed, index, soundfont is not None), spec=spec,
                          stems=stems, mix=mix, sampled=soundfont is not None,
                          parts=[(p.astype(np.float32) * gain).astype(np.float32) for p in parts])


# --------------------------------------------------------------------------------------------
# As a data source
# --------------------------------------------------------------------------------------------

def part_infos(descriptions: list[str]) -> tuple[PartInfo, ...]:
    """The :class:`PartInfo` of a track whose synth parts are described by ``descriptions``:
    ``part1``, ``part2``... when there are two or more, none for one part."""
    if len(descriptions) < 2:
        return ()
    return tuple(PartInfo(f"part{k + 1}", text) for k, text in enumerate(descriptions))


class RenderedSource(TrackSource):
    """A source whose tracks are rendered whole on demand (:meth:`_render`) and cut into the
    spans asked for; the ``cache`` most recent renderings are kept. A share ``production`` of
    the tracks (drawn per track from the set's ``seed`` and the track's index) go through a
    production chain (:mod:`.production`) after rendering."""

    seed: int = 0
    _index: dict[str, int]

    def __init__(self, cache: int = 4, production: float = 0.0):
        super().__init__()
        if not 0.0 <= production <= 1.0:
            raise SynthGenError(f"production must be a share between 0 and 1, got {production}")
        self._cache: OrderedDict[tuple[str, int], SyntheticTrack] = OrderedDict()
        self._cache_size = cache
        self.production = production

    def settings(self) -> dict[str, object]:
        return {"production": self.production} if self.production else {}

    def render(self, name: str, sample_rate: int = 32_000) -> SyntheticTrack:
        """The whole rendered track ``name`` (cached)."""
        key = (name, sample_rate)
        if key not in self._cache:
            self._cache[key] = self._produced(self._render(name, sample_rate), self._index[name], sample_rate)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    @abc.abstractmethod
    def _render(self, name: str, sample_rate: int) -> SyntheticTrack:
        """Render track ``name`` whole at ``sample_rate``."""

    def _produced(self, track: SyntheticTrack, index: int, sample_rate: int) -> SyntheticTrack:
        """``track`` through a production chain drawn for it, if it is among the produced share
        (the draw is its own: the rest of the track is what it is without production)."""
        if not self.production:
            return track
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(index), 9]))
        if rng.uniform() >= self.production:
            return track
        chain = draw_production(rng, production_names(list(track.stems), len(track.parts)))
        stems, parts = produce(track.stems, track.parts, sample_rate, chain)
        stems = {k: v.astype(np.float32) for k, v in stems.items()}
        return dataclasses.replace(track, stems=stems, mix=np.sum(np.stack(list(stems.values())), axis=0,
                                                                    dtype=np.float32),
                                   parts=[p.astype(np.float32) for p in parts])

    def _load(self, info: TrackInfo, sample_rate: int, offset: float,
              duration: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        track = self.render(info.name, sample_rate)
        start = int(round(offset * sample_rate))
        stop = None if duration is None else start + int(round(duration * sample_rate))
        return (torch.from_numpy(track.mix[:, start:stop].copy()),
                torch.from_numpy(track.synth[:, start:stop].copy()))

    def _load_parts(self, info: TrackInfo, sample_rate: int, offset: float,
                    duration: float | None) -> dict[str, torch.Tensor]:
        track = self.render(info.name, sample_rate)
        start = int(round(offset * sample_rate))
        stop = None if duration is None else start + int(round(duration * sample_rate))
        return {p.name: torch.from_numpy(audio[:, start:stop].copy()) for p, audio in zip(info.parts, track.parts)}


class SyntheticSource(RenderedSource):
    """``num_tracks`` synthetic tracks rendered on demand (the few most recent are cached).

    Args:
        num_tracks: how many tracks the set has.
        seed: the set's seed; track ``i`` is ``render_track(seed, i, ...)``.
        track_duration: length of every track in seconds.
        channels: channels rendered (1 or 2).
        cache: how many rendered tracks to keep in memory.
        soundfont: play the tracks with this GM SoundFont (``True``: the installed one, see
            :func:`.soundfont.find_soundfont`) instead of the procedural voices; the source's
            kind is then ``sampled``.
        two_parts: share of tracks whose synth has two parts (see :func:`sample_spec`).
        production: share of tracks that go through a production chain (:mod:`.production`).
    """

    kind = "synthetic"

    def __init__(self, num_tracks: int = 64, seed: int = 0, track_duration: float = 30.0,
                 channels: int = 2, cache: int = 4, soundfont: str | Path | bool | None = None,
                 two_parts: float = TWO_PARTS, production: float = 0.0):
        super().__init__(cache, production)
        if num_tracks < 1:
            raise ValueError(f"num_tracks must be at least 1, got {num_tracks}")
        self.soundfont = None
        if soundfont is not None and soundfont is not False:
            self.soundfont = find_soundfont(None if soundfont is True else soundfont)
            self.kind = "sampled"
        sampled = self.soundfont is not None
        if not 0.0 <= two_parts <= 1.0:
            raise ValueError(f"two_parts must be a share between 0 and 1, got {two_parts}")
        self.seed, self.track_duration, self.channels, self.two_parts = seed, track_duration, channels, two_parts
        self._index: dict[str, int] = {}
        for i in range(num_tracks):
            spec = sample_spec(seed, i, track_duration, two_parts=two_parts)
            name = track_name(seed, i, sampled)
            self._index[name] = i
            description = describe_sampled(spec) if sampled else spec.describe()
            parts = describe_sampled_parts(spec) if sampled else [p.describe() for p in spec.synths]
            self._tracks[name] = TrackInfo(name, track_duration, description, parts=part_infos(parts))

    def settings(self) -> dict[str, object]:
        return {"track_duration": self.track_duration, "two_parts": self.two_parts,
                "soundfont": None if self.soundfont is None else Path(self.soundfont).name, **super().settings()}

    def _render(self, name: str, sample_rate: int) -> SyntheticTrack:
        return render_track(self.seed, self._index[name], self.track_duration, sample_rate, self.channels,
                            self.soundfont, self.two_parts)
