"""Real music from score files: real compositions played as multitracks with a synth part.

The procedural generator writes its own music, so a model trained on it alone learns the
generator's arrangement habits (which role, register and rhythm the synth has) as much as what
a synth sounds like. This source takes the music from real scores instead — MIDI, MusicXML,
Humdrum, ABC, or the ``music21`` package's own corpus (about 3,000 pieces, offline) — and
plays each piece as one multitrack excerpt:

* one part (sometimes two) is the **synth**: a synth program of a GM SoundFont (leads, pads,
  synth bass, strings and brass), one of the procedural generator's synth voices (oscillator,
  filter, envelopes), or a preset of one of LMMS's synth engines (:mod:`.lmms`), driven by the
  score's notes, so no single source defines what a synth is; its effects (drive, chorus,
  delay, reverb) come from the same draws;
* every other part is an acoustic or sampled instrument of an **ensemble** drawn per piece
  (strings, winds, brass, piano, guitars, organ, choir, or mixed), each part given the
  ensemble's instrument for its register and moved by octaves into that instrument's range;
  some pieces also get a drum kit;
* or, as an **electronic** arrangement (``arrangement="electronic"`` or ``"both"``), up to five
  parts of which all but at most one are synths of different roles, nearly always with drums,
  the synths most of the mix, as in an electronic production;
* levels, panning, room reverb and the synth-to-accompaniment ratio vary as in real mixes,
  with the hard cases on purpose: an acoustic instrument doubling the synth's part in the same
  register, and quiet synths under loud accompaniment.

The stems sum to the mix exactly (as in :mod:`.synthetic`), the description says what was
played, and every track is deterministic per ``(seed, index)``. Pieces are split into train
and validation *by piece* (a hash of the piece's path, the same for every seed and SoundFont),
so a validation set of pieces never trained on can be played by a SoundFont never trained on;
LMMS presets are split the same way (a hash of the preset's path), and a piece is only ever
played by presets of its own side.
Pieces that cannot be used are listed in the source's problems with the reason; the judging
pieces of the music21 corpus (``RESERVED``) are always excluded.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SynthGenError
from .lmms import PRESETS, preset_name, render_preset, synth_presets
from .samples import SampleSet, hydrogen_sets, render_samples, salamander_sets, tonejs_sets
from .soundfont import DRUM_KEYS, GM_NAMES, find_soundfont, render_notes
from .synthetic import (_DRUM_PATTERNS, Note, RenderedSource, SyntheticTrack, _join, _pan, _place, _reverb,
                        _rms, _synth_part, _synth_voice, part_infos, synth_effects)
from .tracks import TrackInfo

MUSIC21 = "music21"
SCORE_SUFFIXES = (".mid", ".midi", ".mxl", ".musicxml", ".xml", ".krn", ".abc")
RESERVED = Path(__file__).with_name("reserved_scores.txt")
"""music21 corpus paths reserved for judging (a copy of the judging README's list): never
rendered by this source."""

# GM programs of the accompaniment: name and playable range (MIDI pitches).
INSTRUMENTS = {
    0: ("piano", 21, 108), 1: ("bright piano", 21, 108), 4: ("electric piano", 28, 103),
    6: ("harpsichord", 29, 89), 16: ("drawbar organ", 24, 96), 19: ("church organ", 24, 96),
    24: ("nylon guitar", 40, 84), 25: ("steel guitar", 40, 84), 27: ("clean electric guitar", 40, 86),
    32: ("acoustic bass", 28, 55), 33: ("fingered bass", 28, 60), 40: ("violin", 55, 103),
    41: ("viola", 48, 88), 42: ("cello", 36, 76), 43: ("contrabass", 28, 67), 48: ("string ensemble", 28, 103),
    52: ("choir", 40, 84), 53: ("voice oohs", 40, 84), 56: ("trumpet", 54, 82), 57: ("trombone", 40, 72),
    58: ("tuba", 28, 58), 60: ("french horn", 41, 77), 68: ("oboe", 58, 91), 69: ("english horn", 52, 81),
    70: ("bassoon", 34, 75), 71: ("clarinet", 50, 91), 73: ("flute", 60, 96),
}
# Ensembles: the instruments that may play a part of each register (by the part's median pitch).
REGISTERS = ("high", "mid", "low", "bass")
ENSEMBLES = {
    "strings": {"high": (40,), "mid": (40, 41), "low": (42, 41), "bass": (42, 43)},
    "winds": {"high": (73, 68), "mid": (71, 68, 69), "low": (70, 71), "bass": (70,)},
    "brass": {"high": (56,), "mid": (60, 56), "low": (57, 60), "bass": (58, 57)},
    "piano": {r: (0, 1) for r in REGISTERS},
    "guitars": {"high": (24, 25, 27), "mid": (24, 25, 27), "low": (24, 25), "bass": (32, 33)},
    "organ": {r: (19, 16) for r in REGISTERS},
    "choir": {r: (52, 53) for r in REGISTERS},
    "keys": {"high": (0, 4, 6), "mid": (0, 4, 6), "low": (0, 4, 6), "bass": (32, 33, 0)},
}
ENSEMBLES["mixed"] = {r: tuple(sorted({p for e in ENSEMBLES.values() for p in e[r]})) for r in REGISTERS}
# SoundFont synth programs by register (leads, pads, synth strings/brass, synth bass).
SYNTH_PROGRAMS = {"high": (80, 81, 84, 86, 87, 62, 63), "mid": (81, 88, 89, 90, 91, 94, 95, 50, 51, 62),
                  "low": (88, 89, 90, 50, 51, 63, 38), "bass": (38, 39, 87)}
SYNTH_RANGE = (24, 108)
_ROLE_BY_REGISTER = {"high": ("lead", "lead", "pluck", "arp"), "mid": ("pad", "chords", "lead", "pluck"),
                     "low": ("pad", "chords", "pluck"), "bass": ("pluck", "lead", "pad")}


@dataclass(frozen=True)
class ScorePart:
    """One part of a score: its name and notes, onsets and lengths in quarter notes."""

    name: str
    notes: tuple[tuple[float, float, int, float], ...]  # (start, length, MIDI pitch, velocity 0..1)

    @property
    def median_pitch(self) -> float:
        return float(np.median([n[2] for n in self.notes]))

    @property
    def register(self) -> str:
        m = self.median_pitch
        return "high" if m >= 67 else "mid" if m >= 57 else "low" if m >= 45 else "bass"


@dataclass(frozen=True)
class Piece:
    """A readable score: ``path`` as listed (relative to its root), its title, parts, length in
    quarter notes and the tempo its first metronome mark gives (``None`` without one)."""

    path: str
    title: str
    parts: tuple[ScorePart, ...]
    quarters: float
    bpm: float | None


@dataclass(frozen=True)
class PartPlan:
    """How one part is played: as synth or accompaniment, by which instrument, where."""

    part: int  # index into Piece.parts
    synth: bool
    program: int | None  # GM program; None: a procedural synth voice or an LMMS preset
    soundfont: str | None
    transpose: int  # semitones (whole octaves)
    voice: object = None  # a synth's SynthPartSpec: its procedural voice, effects, pan and level
    pan: float = 0.0  # accompaniment only
    level_db: float = 0.0  # accompaniment only
    preset: str | None = None  # a synth's LMMS preset file (under lmms.PRESETS)
    samples: str | None = None  # accompaniment only: the recorded instrument (SampleSet name) instead of the SoundFont

    def instrument(self) -> str:
        if self.preset is not None:
            return preset_name(self.preset)
        if self.program is None:
            return self.voice.describe()
        return GM_NAMES.get(self.program) or INSTRUMENTS[self.program][0]


@dataclass(frozen=True)
class ScoreTrackSpec:
    """Everything drawn for one track: excerpt, tempo, ensemble, plans, drums and balance."""

    name: str
    piece: str
    title: str
    start: float  # quarter notes into the piece
    bpm: float
    duration: float
    ensemble: str
    plans: tuple[PartPlan, ...]
    drums: str | None
    drums_soundfont: str
    synth_db: float  # synth RMS re the accompaniment's
    text: str = ""
    arrangement: str = "ensemble"  # or "electronic" (see plan_track)
    parts_text: tuple[str, ...] = ()  # what each synth part is, in the order of the synth plans
    drum_kit: str | None = None  # a recorded drum kit (SampleSet name) instead of the SoundFont's

    def _describe_parts(self, piece: Piece) -> tuple[str, ...]:
        """Each synth part on its own: voice, role and register, e.g. 'warm saw pad, low register'
        or 'sawtooth lead arp, high register'."""
        texts = []
        for p in (p for p in self.plans if p.synth):
            v, register = p.voice, piece.parts[p.part].register
            voice = f"{v.brightness} {v.oscillator}" if p.program is None and p.preset is None else p.instrument()
            texts.append(f"{voice} {v.role}, {register} register")
        return tuple(texts)

    def describe(self) -> str:
        """What was played, e.g. 'warm pad playing the Alto part; bach/bwv66.6, 84 bpm, with
        violin, viola and cello'."""
        return self.text

    def _describe(self, piece: Piece) -> str:
        synths = [f"{p.instrument()} playing the {piece.parts[p.part].name} part" for p in self.plans if p.synth]
        others = []
        for p in self.plans:
            if not p.synth and p.instrument() not in others:
                others.append(p.instrument())
        others += ["drums"] if self.drums else []
        text = "; plus ".join(synths) + f"; {self.title}, {self.bpm:.0f} bpm"
        return text + (", with " + _join(others) if others else "")


# --------------------------------------------------------------------------------------------
# Finding and reading scores
# --------------------------------------------------------------------------------------------

def read_patterns(exclude: str | Path | list[str] | None) -> list[str]:
    """Exclude patterns from a file (one path or glob per line, ``#`` comments) or a list."""
    if exclude is None:
        return []
    if isinstance(exclude, (list, tuple)):
        return [str(p).strip() for p in exclude if str(p).strip()]
    path = Path(exclude).expanduser()
    if not path.is_file():
        raise SynthGenError(f"{path}: no such exclude file — give a text file with one score path per line")
    patterns = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [p for p in patterns if p]


def excluded(rel: str, patterns: list[str]) -> bool:
    """Whether score ``rel`` (a POSIX path relative to its root) matches one of ``patterns``."""
    return any(rel == p or fnmatch.fnmatch(rel, p) for p in patterns)


def find_scores(root: str | Path) -> tuple[Path, list[str]]:
    """The folder and the score paths (relative, POSIX, sorted) of ``root``: a folder walked for
    score files, or ``music21`` for that package's corpus."""
    if str(root) == MUSIC21:
        try:
            from music21 import corpus
        except ImportError:
            raise SynthGenError("the music21 corpus needs the music21 package (pip install music21)") from None
        paths = [Path(p) for p in corpus.getCorePaths()]
        base = next(p for p in paths[0].parents if p.name == "corpus")
    else:
        base = Path(root).expanduser()
        if not base.is_dir():
            raise SynthGenError(f"{base}: no such folder — check the path (is Google Drive mounted?)")
        paths = [p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in SCORE_SUFFIXES]
    rels = sorted(p.relative_to(base).as_posix() for p in paths if p.suffix.lower() in SCORE_SUFFIXES)
    rels = [r for r in rels if not any(part.startswith(".") for part in r.split("/"))]
    return base, rels


def _stem(rel: str) -> str:
    """A score path without its extension: the piece's title in descriptions and names."""
    return re.sub(r"\.(mxl|musicxml|xml|krn|abc|midi?)$", "", rel)


def piece_split(rel: str, valid_fraction: float) -> str:
    """``valid`` or ``train`` for a piece, from a hash of its path alone (any seed, any SoundFont)."""
    h = int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8], 16) / 16 ** 8
    return "valid" if h < valid_fraction else "train"


def _velocity(element) -> float:
    vel = getattr(getattr(element, "volume", None), "velocity", None)
    return float(np.clip(vel / 127, 0.2, 1.0)) if vel else 0.7


def _joined_notes(part) -> list[tuple[float, float, int, float]]:
    """A part's notes as ``(start, length, pitch, velocity)``, tied notes joined into one and
    chords split into their notes (music21's ``stripTies`` does the same through a deep copy
    of the whole part, which takes minutes on a long movement)."""
    notes: list[list] = []
    tied: dict[int, int] = {}  # pitch -> index of the note its tie continues
    for el in part.flatten().notes:
        start, length = float(el.offset), float(el.quarterLength)
        if length <= 0:  # grace notes
            continue
        for n in getattr(el, "notes", None) or (el,):
            if getattr(n, "pitch", None) is None:  # unpitched percussion
                continue
            pitch, tie = int(n.pitch.midi), (n.tie.type if n.tie is not None else None)
            if tie in ("continue", "stop") and pitch in tied:
                first = notes[tied[pitch]]
                first[1] = max(first[1], start + length - first[0])
                if tie == "stop":
                    del tied[pitch]
                continue
            notes.append([start, length, pitch, _velocity(el)])
            if tie == "start":
                tied[pitch] = len(notes) - 1
    return [tuple(n) for n in notes]


def read_score(path: Path, rel: str) -> Piece:
    """Parse a score with music21: its parts' notes (ties joined, chords split into notes).

    Raises:
        SynthGenError: unreadable, or fewer than two parts with notes (nothing to accompany).
    """
    try:
        from music21 import converter, stream, tempo
    except ImportError:
        raise SynthGenError("score files need the music21 package (pip install music21)") from None
    try:
        score = converter.parse(str(path))
    except Exception as exc:  # music21 raises many kinds for malformed files
        raise SynthGenError(f"{rel}: unreadable score ({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})") from None
    if isinstance(score, stream.Opus):  # a collection (ABC books): its first piece with parts
        score = next((s for s in score.scores if len(s.parts) >= 2), score.scores[0] if score.scores else score)
    parts = []
    for i, part in enumerate(getattr(score, "parts", [])):
        try:
            notes = _joined_notes(part)
        except Exception as exc:  # a score music21 reads but cannot walk
            raise SynthGenError(f"{rel}: unreadable score ({type(exc).__name__} in part {i + 1})") from None
        if notes:
            name = " ".join(str(part.partName or f"part {i + 1}").split()) or f"part {i + 1}"
            parts.append(ScorePart(name, tuple(sorted(notes))))
    if len(parts) < 2:
        raise SynthGenError(f"{rel}: {len(parts)} part(s) with notes — a piece needs at least two "
                            "(one synth, one accompaniment)")
    quarters = max(n[0] + n[1] for p in parts for n in p.notes)
    marks = [m.number for m in score.flatten().getElementsByClass(tempo.MetronomeMark) if m.number]
    bpm = float(np.clip(marks[0], 40, 200)) if marks else None
    return Piece(rel, _stem(rel), tuple(parts), quarters, bpm)


# --------------------------------------------------------------------------------------------
# Arranging
# --------------------------------------------------------------------------------------------

def _fit_octaves(pitches: list[int], low: int, high: int) -> int:
    """The octave shift (semitones) that puts most of ``pitches`` inside ``[low, high]``,
    nearest to no shift among equals."""
    best = min(range(-4, 5), key=lambda k: (sum(not low <= p + 12 * k <= high for p in pitches), abs(k)))
    return 12 * best


def fold_into(pitch: int, low: int, high: int) -> int:
    """``pitch`` moved by octaves into ``[low, high]`` (a range of an octave or more)."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def part_range(plan: PartPlan) -> tuple[int, int]:
    """The range a plan's notes are played in."""
    return SYNTH_RANGE if plan.synth else INSTRUMENTS[plan.program][1:]


SYNTH_VOICES = ("both", "soundfont", "procedural", "lmms", "all")
ARRANGEMENTS = ("ensemble", "electronic", "both")
ELECTRONIC_PARTS = 5
"""Most parts an electronic arrangement plays (the others of a larger score are left out)."""
ELECTRONIC_ENSEMBLES = ("keys", "guitars", "piano", "mixed")
"""Where an electronic arrangement's one acoustic or sampled part (if any) comes from."""


def plan_track(piece: Piece, seed: int, index: int, soundfonts: list[str], duration: float,
               name: str, synth_voices: str = "both", arrangement: str = "ensemble",
               presets: list[str] | None = None) -> ScoreTrackSpec:
    """Draw how track ``index`` plays ``piece`` (deterministic per ``(seed, index)``).

    ``synth_voices``: the synth parts' voices: SoundFont synth programs or procedural voices
    (``both``, drawn half and half), only one kind (``soundfont``, ``procedural``, or ``lmms``:
    LMMS synth-engine ``presets``), or ``all`` three (drawn a third each).

    ``arrangement``: ``ensemble`` (one synth part, sometimes two, among acoustic instruments),
    ``electronic`` (as in an electronic production: up to :data:`ELECTRONIC_PARTS` parts, all
    synths but at most one sampled instrument, nearly always drums, the synths louder), or
    ``both`` (drawn half and half).
    """
    if synth_voices in ("lmms", "all") and not presets:
        raise SynthGenError(f"{piece.path}: LMMS synth voices need presets to draw from")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 7]))
    bpm = float(piece.bpm if piece.bpm and rng.random() < 0.7 else rng.uniform(60, 132))
    need = duration * bpm / 60
    # the excerpt: a start (on a beat) where the synth part plays; the piece loops if short
    n_parts = len(piece.parts)
    electronic = arrangement == "electronic" or arrangement == "both" and rng.random() < 0.5
    if electronic:
        played = {int(i) for i in rng.choice(n_parts, min(n_parts, ELECTRONIC_PARTS), replace=False)}
        n_acoustic = int(rng.random() < 0.6)
        synth_parts = [int(i) for i in rng.choice(sorted(played), len(played) - n_acoustic, replace=False)]
    else:
        played = set(range(n_parts))
        n_synths = 2 if n_parts >= 4 and rng.random() < 0.2 else 1
        synth_parts = [int(i) for i in rng.choice(n_parts, n_synths, replace=False)]
    starts = [0.0] if piece.quarters <= need else [float(np.floor(rng.uniform(0, piece.quarters - need)))
                                                   for _ in range(6)]
    busy = [sum(s <= n[0] < s + need for i in synth_parts for n in piece.parts[i].notes) for s in starts]
    start = starts[int(np.argmax(busy))]
    if max(busy) == 0:  # the drawn part rests through every candidate excerpt: the busiest part plays synth
        counts = [sum(start <= n[0] < start + need for n in part.notes) for part in piece.parts]
        synth_parts = [int(np.argmax(counts))]
        played.add(synth_parts[0])
    ensemble = str(rng.choice(ELECTRONIC_ENSEMBLES if electronic else tuple(ENSEMBLES)))
    plans = []
    for i, part in enumerate(piece.parts):
        if i not in played:
            continue
        sf = str(rng.choice(soundfonts))
        pitches = [n[2] for n in part.notes]
        if i in synth_parts:
            effects = _synth_part(rng, str(rng.choice(_ROLE_BY_REGISTER[part.register])))
            kind = synth_voices
            if kind in ("both", "all"):
                kind = ("procedural", "soundfont", "lmms")[int(rng.random() * (2 if kind == "both" else 3))]
            preset = str(rng.choice(presets)) if kind == "lmms" else None
            program = int(rng.choice(SYNTH_PROGRAMS[part.register])) if kind == "soundfont" else None
            plans.append(PartPlan(i, True, program, None if program is None else sf,
                                  _fit_octaves(pitches, *SYNTH_RANGE), effects, preset=preset))
            if rng.random() < 0.15:  # hard case: an acoustic instrument doubles the synth's line
                double = int(rng.choice(ENSEMBLES[ensemble][part.register]))
                plans.append(PartPlan(i, False, double, sf, _fit_octaves(pitches, *INSTRUMENTS[double][1:]),
                                      pan=float(rng.uniform(-0.6, 0.6)), level_db=float(rng.uniform(-4, 2))))
            continue
        program = int(rng.choice(ENSEMBLES[ensemble][part.register]))
        plans.append(PartPlan(i, False, program, sf, _fit_octaves(pitches, *INSTRUMENTS[program][1:]),
                              pan=0.0 if part.register == "bass" else float(rng.uniform(-0.7, 0.7)),
                              level_db=float(rng.uniform(-4, 2))))
    drums = str(rng.choice(tuple(_DRUM_PATTERNS))) if rng.random() < (0.9 if electronic else 0.3) else None
    if electronic and drums is None and all(p.synth for p in plans):  # the synths need something beside them
        drums = str(rng.choice(tuple(_DRUM_PATTERNS)))
    # synth against accompaniment: mostly -9..+3 dB, a fifth of the tracks a quiet synth;
    # in an electronic production the synths are most of the mix
    if electronic:
        synth_db = float(rng.uniform(-4, 8))
    else:
        synth_db = float(rng.uniform(-16, -9) if rng.random() < 0.2 else rng.uniform(-9, 3))
    spec = ScoreTrackSpec(name, piece.path, piece.title, start, round(bpm, 2), duration, ensemble, tuple(plans),
                          drums, str(rng.choice(soundfonts)), synth_db,
                          arrangement="electronic" if electronic else "ensemble")
    return dataclasses.replace(spec, text=spec._describe(piece), parts_text=spec._describe_parts(piece))


SAMPLED_SHARE = 0.5
"""Share of the accompaniment parts (and drum kits) that a recorded instrument plays, where the
source has recordings of the part's instrument."""


def with_samples(spec: ScoreTrackSpec, seed: int, index: int, sets: dict[str, SampleSet]) -> ScoreTrackSpec:
    """``spec`` with :data:`SAMPLED_SHARE` of its accompaniment parts played by a recorded
    instrument of ``sets`` of the same GM program (and of its drums by a recorded kit), where
    there is one. Drawn from a generator of its own, so everything else :func:`plan_track` drew
    is as it would be without recordings."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 10]))
    by_program: dict[int, list[str]] = {}
    for name, s in sorted(sets.items()):
        if not s.drums:
            by_program.setdefault(s.program, []).append(name)
    kits = sorted(name for name, s in sets.items() if s.drums)
    plans = []
    for plan in spec.plans:
        choices = [] if plan.synth else by_program.get(plan.program, [])
        if choices and rng.random() < SAMPLED_SHARE:
            plan = dataclasses.replace(plan, samples=str(rng.choice(choices)))
        plans.append(plan)
    kit = str(rng.choice(kits)) if spec.drums and kits and rng.random() < SAMPLED_SHARE else None
    return dataclasses.replace(spec, plans=tuple(plans), drum_kit=kit)


def find_sample_sets(roots: list[str | Path], problems: list[str]) -> dict[str, SampleSet]:
    """Every recorded instrument and drum kit under ``roots`` (:mod:`.samples`: tonejs-instruments
    and Salamander packages, Hydrogen drum kits), by name; what cannot be read goes to
    ``problems``."""
    sets: dict[str, SampleSet] = {}
    for root in roots:
        if not Path(root).expanduser().is_dir():
            raise SynthGenError(f"{root}: no such folder of recorded instruments (make sources packs them)")
        for found in (tonejs_sets(root, problems), salamander_sets(root, problems), hydrogen_sets(root, problems)):
            sets.update((s.name, s) for s in found)
    return sets


def excerpt_notes(piece: Piece, spec: ScoreTrackSpec, plan: PartPlan, rng=None) -> list[Note]:
    """The notes a plan plays in the excerpt, in seconds, moved into its range (the piece is
    repeated from its start where the excerpt runs past its end)."""
    beat = 60.0 / spec.bpm
    need = spec.duration / beat
    low, high = part_range(plan)
    out = []
    for lap in range(int(np.ceil((spec.start + need) / piece.quarters)) + 1):
        for start, length, pitch, vel in piece.parts[plan.part].notes:
            t = start + lap * piece.quarters - spec.start
            if 0 <= t < need:
                jitter = 0.0 if rng is None else float(rng.normal(0, 0.006))
                out.append(Note(max(0.0, t * beat + jitter), min(length, need - t) * beat,
                                fold_into(pitch + plan.transpose, low, high), vel))
    return out


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def render_score_track(piece: Piece, spec: ScoreTrackSpec, seed: int, index: int, sample_rate: int = 32_000,
                       channels: int = 2, sample_sets: dict[str, SampleSet] | None = None) -> SyntheticTrack:
    """Play ``spec``'s excerpt of ``piece``: stems ``synth`` and one per accompaniment
    instrument (and ``drums``), summing exactly to ``mix``. ``sample_sets`` holds the recorded
    instruments the spec names (:func:`with_samples`)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 8]))
    sr, n = sample_rate, int(round(spec.duration * sample_rate))
    synth = np.zeros((channels, n))
    parts = [np.zeros((channels, n)) for p in spec.plans if p.synth]  # a part silent in the excerpt stays zeros
    stems: dict[str, np.ndarray] = {}
    room = float(rng.uniform(0.4, 1.8))
    for k, plan in enumerate(spec.plans):
        part = sum(p.synth for p in spec.plans[:k])  # which synth part this plan is, if it is one
        notes = excerpt_notes(piece, spec, plan, rng)
        if not notes:
            continue
        if plan.preset is not None:
            x = render_preset(notes, plan.preset, n, sr, spec.bpm)
        elif plan.program is None:
            x = _place(notes, lambda nt, v=plan.voice: _synth_voice(nt, v, sr, rng), n, sr, rng)
        elif plan.samples is not None:
            x = render_samples(notes, sample_sets[plan.samples], n, sr)
        else:
            x = render_notes(notes, plan.program, n, sr, plan.soundfont)
        if not np.any(x):
            continue
        if plan.synth:
            parts[part] = synth_effects(x, plan.voice, sr, spec.bpm, rng, channels)
            synth += parts[part]
            continue
        x = _reverb(_pan(x / _rms(x), plan.pan, channels), sr, rng, rt60=room, wet=float(rng.uniform(0.1, 0.35)))
        stems[f"{k:02d} {plan.instrument()}"] = x / _rms(x) * 10 ** (plan.level_db / 20)
    if spec.drums:
        kick, snare, hat, opn = _DRUM_PATTERNS[spec.drums]
        step = 60.0 / spec.bpm / 4
        hits = [Note(bar * 16 * step + s * step + float(rng.normal(0, 0.004)), 0.2, DRUM_KEYS[name],
                     0.5 if name == "hat" else 0.85)
                for bar in range(int(spec.duration / (16 * step)) + 1)
                for name, steps in (("kick", kick), ("snare", snare), ("hat", hat), ("open", opn)) for s in steps
                if bar * 16 * step + s * step < spec.duration]
        if spec.drum_kit is not None:
            x = render_samples(hits, sample_sets[spec.drum_kit], n, sr)
        else:
            x = render_notes(hits, 0, n, sr, spec.drums_soundfont, drums=True)
        stems["drums"] = _pan(x / _rms(x), 0.0, channels) * 10 ** (float(rng.uniform(-3, 1)) / 20)
    accomp = sum(stems.values()) if stems else np.zeros((channels, n))
    if not np.any(synth):
        raise SynthGenError(f"{spec.piece}: the synth part has no notes in this excerpt")
    stems = {"synth": synth / _rms(synth) * _rms(accomp) * 10 ** (spec.synth_db / 20), **stems}
    parts = [p / _rms(synth) * _rms(accomp) * 10 ** (spec.synth_db / 20) for p in parts] if len(parts) > 1 else []
    mix = np.sum(np.stack(list(stems.values())), axis=0, dtype=np.float64)
    gain = float(rng.uniform(0.5, 0.95)) / (np.abs(mix).max() + 1e-9)
    stems = {k: (v * gain).astype(np.float32) for k, v in stems.items()}
    mix = np.sum(np.stack(list(stems.values())), axis=0, dtype=np.float32)
    return SyntheticTrack(name=spec.name, spec=spec, stems=stems, mix=mix,
                          parts=[(p * gain).astype(np.float32) for p in parts])


# --------------------------------------------------------------------------------------------
# As a data source
# --------------------------------------------------------------------------------------------

def _read_or_why(args: tuple[Path, str]) -> Piece | str:
    """:func:`read_score`, or why not (picklable, for a process pool)."""
    try:
        return read_score(*args)
    except SynthGenError as exc:
        return str(exc)


def _read_all(base: Path, rels: list[str], workers: int) -> list[Piece | str]:
    """Each score of ``rels`` read (or why not), in order, by ``workers`` processes."""
    jobs = [(base / rel, rel) for rel in rels]
    if workers <= 1 or len(jobs) < 2:
        return [_read_or_why(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_read_or_why, jobs))


def _slug(rel: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", _stem(rel)).strip("-")[-40:]


def _interleave(rels: list[str], seed: int) -> list[str]:
    """``rels`` shuffled by ``seed`` within each top folder (a composer or collection of the
    corpus), then taken a folder at a time in turn: a few hundred pieces span every composer
    instead of mostly the corpus's largest collection."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for rel in rels:
        groups.setdefault(rel.split("/")[0] if "/" in rel else "", []).append(rel)
    queues = [list(rng.permutation(groups[k])) for k in sorted(groups)]
    rng.shuffle(queues)
    order = []
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    return [str(r) for r in order]


class ScoresSource(RenderedSource):
    """``num_tracks`` excerpts of real pieces, played as multitracks on demand.

    Args:
        root: a folder of score files (MIDI, MusicXML, Humdrum, ABC) or ``"music21"``.
        num_tracks: how many tracks; pieces are taken in an order shuffled by ``seed``, a
            folder (composer) at a time in turn, one excerpt each, and reused (another excerpt
            and arrangement) when there are fewer pieces than tracks.
        seed: the set's seed: which pieces, excerpts, instruments and mixes.
        track_duration: seconds per track.
        soundfonts: GM SoundFonts (``.sf2``) the parts are played with, one drawn per part
            (default: the installed one).
        exclude: a file of score paths or globs (relative to ``root``) never to read, or a list.
        pieces: ``all``, or only the ``train`` or ``valid`` pieces of the split by piece.
        synth_voices: ``both``, ``soundfont``, ``procedural``, ``lmms`` or ``all`` (see
            :func:`plan_track`); a piece's LMMS presets come from its own side of their split.
        arrangement: ``ensemble``, ``electronic`` or ``both`` (see :func:`plan_track`).
        valid_fraction: share of pieces in the validation split.
        channels: 1 or 2.
        workers: processes that read the score files (music21's parsing is slow the first time).
        samples: folders of recorded instruments and drum kits (:mod:`.samples`) that play
            :data:`SAMPLED_SHARE` of the accompaniment parts they have recordings for, and of
            the drums, instead of the SoundFonts.
        cache: rendered tracks kept in memory.
        production: share of tracks that go through a production chain (:mod:`.production`).
    """

    kind = "scores"

    def __init__(self, root: str | Path = MUSIC21, num_tracks: int = 64, seed: int = 0,
                 track_duration: float = 30.0, soundfonts: list[str | Path] | str | Path | None = None,
                 exclude: str | Path | list[str] | None = None, pieces: str = "all", valid_fraction: float = 0.1,
                 synth_voices: str = "both", arrangement: str = "ensemble", channels: int = 2, cache: int = 4,
                 workers: int = 1, production: float = 0.0, samples: list[str | Path] | str | Path | None = None):
        super().__init__(cache, production)
        if num_tracks < 1:
            raise SynthGenError(f"num_tracks must be at least 1, got {num_tracks}")
        if pieces not in ("all", "train", "valid"):
            raise SynthGenError(f"pieces must be all, train or valid, got {pieces!r}")
        if synth_voices not in SYNTH_VOICES:
            raise SynthGenError(f"synth voices must be one of {', '.join(SYNTH_VOICES)}, got {synth_voices!r}")
        if arrangement not in ARRANGEMENTS:
            raise SynthGenError(f"arrangement must be one of {', '.join(ARRANGEMENTS)}, got {arrangement!r}")
        if not (np.isfinite(track_duration) and 1.0 <= track_duration <= 600.0):
            raise SynthGenError(f"track duration must be 1 to 600 seconds, got {track_duration}")
        if isinstance(soundfonts, (str, Path)) or soundfonts is None:
            soundfonts = [soundfonts]
        self.soundfonts = [str(find_soundfont(sf)) for sf in soundfonts]
        sample_roots = [str(samples)] if isinstance(samples, (str, Path)) else [str(s) for s in samples or []]
        problems: list[str] = []
        self.sample_sets = find_sample_sets(sample_roots, problems)
        for line in problems:
            self.problems.add("recording not used", line)
        if sample_roots and not self.sample_sets:
            raise SynthGenError(f"{', '.join(sample_roots)}: no recorded instruments or drum kits found "
                                "(tonejs-instruments, Salamander piano or Hydrogen kit folders; make sources packs them)")
        self.presets: dict[str, list[str]] = {"train": [], "valid": []}  # by side of the split
        if synth_voices in ("lmms", "all"):
            for rel in synth_presets():
                self.presets[piece_split(rel, valid_fraction)].append(str(PRESETS / rel))
            if not all(self.presets.values()):
                raise SynthGenError(f"{PRESETS}: no LMMS synth presets on one side of the split "
                                    f"(valid fraction {valid_fraction})")
        self.seed, self.track_duration, self.channels = seed, float(track_duration), channels
        self.valid_fraction = valid_fraction
        self.base, rels = find_scores(root)
        patterns = read_patterns(exclude) + (read_patterns(RESERVED) if str(root) == MUSIC21 else [])
        kept = []
        for rel in rels:
            if excluded(rel, patterns):
                self.problems.add("excluded (never read)", rel)
            elif pieces == "all" or piece_split(rel, valid_fraction) == pieces:
                kept.append(rel)
        if not kept:
            raise SynthGenError(f"{root}: no score files to use ({len(rels)} found, "
                                f"{len(rels) - len(kept)} excluded or in the other split)")
        order = _interleave(kept, seed)
        self.pieces: dict[str, Piece] = {}
        start = 0
        while start < len(order) and len(self.pieces) < num_tracks:  # until one piece per track (or none left)
            # a batch the size of what is missing, read by ``workers`` processes, taken in order:
            # the same pieces as one at a time (parsing is most of a fresh machine's prepare)
            batch = order[start:start + max(num_tracks - len(self.pieces), workers)]
            start += len(batch)
            for rel, got in zip(batch, _read_all(self.base, batch, workers)):
                if len(self.pieces) >= num_tracks:
                    break
                if isinstance(got, Piece):
                    self.pieces[rel] = got
                    continue
                reason = "fewer than two parts (skipped)" if "part(s) with notes" in got else "unreadable score (skipped)"
                self.problems.add(reason, rel if "part(s)" in got else got)
        if not self.pieces:
            raise SynthGenError(f"{root}: none of the {len(order)} score files could be used — "
                                + "; ".join(self.problems.lines(limit=3)))
        names = list(self.pieces)
        self.specs: dict[str, ScoreTrackSpec] = {}
        for i in range(num_tracks):
            piece = self.pieces[names[i % len(names)]]
            name = f"scores_s{seed}_{i:05d}_{_slug(piece.path)}"
            spec = plan_track(piece, seed, i, self.soundfonts, self.track_duration, name, synth_voices, arrangement,
                              self.presets[piece_split(piece.path, valid_fraction)])
            if self.sample_sets:
                spec = with_samples(spec, seed, i, self.sample_sets)
            self.specs[name] = spec
            self._tracks[name] = TrackInfo(name, self.track_duration, spec.describe(),
                                           piece_split(piece.path, valid_fraction), parts=part_infos(spec.parts_text))
        self._index = {name: i for i, name in enumerate(self.specs)}

    def _render(self, name: str, sample_rate: int) -> SyntheticTrack:
        spec = self.specs[name]
        return render_score_track(self.pieces[spec.piece], spec, self.seed, self._index[name], sample_rate,
                                  self.channels, self.sample_sets)

    def settings(self) -> dict[str, object]:
        return {**super().settings(), **({"samples": sorted(self.sample_sets)} if self.sample_sets else {})}
