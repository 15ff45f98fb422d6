"""Sampled instruments for the synthetic generator: its scores played by a General MIDI
SoundFont through FluidSynth.

The procedural generator (:mod:`.synthetic`) synthesises every voice itself, so a model trained
only on it may learn the generator's own timbres. Rendering the same kind of scores with
recorded instrument samples (piano, guitar, bass, strings, drum kit, and the SoundFont's
sampled synth leads and pads) gives held-out mixes whose sounds the generator never made — the
check a separator must pass before real music.

FluidSynth runs as a command (``fluidsynth``, Debian package ``fluidsynth``) on a MIDI file this
module writes, one part at a time, with its own reverb and chorus off: the generator adds its
effects itself, so the stems still sum to the mix exactly. Any GM SoundFont works; Debian's
``timgm6mb-soundfont`` (6 MB) and ``fluid-soundfont-gm`` (FluidR3, 140 MB) install into
``/usr/share/sounds/sf2``, where :func:`find_soundfont` looks.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..audio import load_audio
from ..errors import SynthGenError

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
# The GM SoundFonts looked for by name before Debian's default-GM.sf2 link, which points at the
# installed SoundFont of highest priority: installing a training source such as opl3-soundfont
# (an FM chip's sounds, priority 30) would otherwise change what "the installed one" plays.
SOUNDFONT_NAMES = ("FluidR3_GM.sf2", "TimGM6mb.sf2", "default-GM.sf2")

# General MIDI programs (0-based) that can play each part. Synth parts use the SoundFont's
# sampled synthesizers (leads 80-87, pads 88-95, synth strings/brass/bass), the accompaniment
# its acoustic and electric instruments.
SYNTH_PROGRAMS = {
    "lead": (80, 81, 84, 86, 87),
    "pad": (88, 89, 90, 91, 94, 95),
    "arp": (80, 81, 38, 62, 63),
    "pluck": (81, 84, 38, 39),
    "chords": (50, 51, 62, 63, 89),
}
ACCOMPANIMENT_PROGRAMS = {
    "piano": (0, 1, 4),
    "organ": (16, 17, 18),
    "guitar": (24, 25, 27),
    "strings": (48, 49),
    "bass": (32, 33, 34),
}
GM_NAMES = {
    0: "acoustic grand piano", 1: "bright acoustic piano", 4: "electric piano",
    16: "drawbar organ", 17: "percussive organ", 18: "rock organ",
    24: "nylon guitar", 25: "steel guitar", 27: "clean electric guitar",
    32: "acoustic bass", 33: "fingered bass", 34: "picked bass", 38: "synth bass 1",
    39: "synth bass 2", 48: "string ensemble", 49: "slow strings", 50: "synth strings 1",
    51: "synth strings 2", 62: "synth brass 1", 63: "synth brass 2", 80: "square lead",
    81: "sawtooth lead", 84: "charang lead", 86: "fifths lead", 87: "bass and lead",
    88: "new age pad", 89: "warm pad", 90: "polysynth pad", 91: "choir pad", 94: "halo pad",
    95: "sweep pad",
}
# GM percussion keys (channel 10) for the generator's four drum sounds.
DRUM_KEYS = {"kick": 36, "snare": 38, "hat": 42, "open": 46}

_TICKS_PER_BEAT = 480
_SECONDS_PER_TICK = 0.5 / _TICKS_PER_BEAT  # at the file's tempo of 120 bpm


def choose_programs(spec) -> dict[str, int]:
    """The GM program of every part of track ``spec`` (a :class:`.synthetic.TrackSpec`):
    ``synth0``, ``synth1``... for its synth parts, then one per accompaniment instrument.
    Drawn from the track's seed and index alone, so they are known before rendering."""
    rng = np.random.default_rng(np.random.SeedSequence([int(spec.seed), int(spec.index), 2]))
    programs = {f"synth{i}": int(rng.choice(SYNTH_PROGRAMS[part.role]))
                for i, part in enumerate(spec.synths)}
    programs.update({inst: int(rng.choice(ACCOMPANIMENT_PROGRAMS[inst]))
                     for inst in spec.accompaniment if inst != "drums"})
    return programs


def describe_sampled(spec) -> str:
    """The description of track ``spec`` played by the SoundFont, e.g. 'warm pad playing
    the pad part; D minor, 96 bpm, with nylon guitar, fingered bass and drums'."""
    programs = choose_programs(spec)
    parts = [f"{GM_NAMES[programs[f'synth{i}']]} playing the {part.role} part"
             for i, part in enumerate(spec.synths)]
    others = [GM_NAMES[programs[a]] if a in programs else a for a in spec.accompaniment]
    text = "; plus ".join(parts) + f"; {spec.key_name}, {spec.bpm} bpm"
    if others:
        text += ", with " + (others[0] if len(others) == 1
                             else ", ".join(others[:-1]) + " and " + others[-1])
    return text


def describe_sampled_parts(spec) -> list[str]:
    """What each synth part of ``spec`` is when the SoundFont plays it, e.g. 'Pad 2 (warm) pad, low
    register' (the program, the part's role and register)."""
    programs = choose_programs(spec)
    return [f"{GM_NAMES[programs[f'synth{i}']]} {part.role}, {part.register} register"
            for i, part in enumerate(spec.synths)]


def find_soundfont(path: str | Path | None = None) -> Path:
    """The SoundFont to play with: ``path`` if given, else the first of :data:`SOUNDFONT_NAMES`
    installed (FluidR3, then TimGM6mb, then whatever Debian's default-GM.sf2 link points at).

    Raises:
        SynthGenError: ``path`` does not exist or is not a SoundFont, or none is installed.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SynthGenError(f"{p}: no such SoundFont file — pass the path of a .sf2 file")
        with open(p, "rb") as f:
            head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise SynthGenError(f"{p}: not a SoundFont (.sf2) file — its header is not RIFF/sfbk")
        return p
    for folder in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise SynthGenError("no General MIDI SoundFont found in /usr/share/sounds/sf2 — install one "
                        "(apt-get install fluidsynth timgm6mb-soundfont) or pass --soundfont PATH")


def _varlen(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(notes: Iterable, program: int, drums: bool = False) -> bytes:
    """A one-track Standard MIDI File playing ``notes`` (onset/duration in seconds, MIDI pitch,
    velocity 0..1) with GM ``program``, or on the percussion channel with ``drums=True``."""
    channel = 9 if drums else 0
    events = [(0, 0, bytes((0xFF, 0x51, 0x03)) + (500_000).to_bytes(3, "big")),  # 120 bpm
              (0, 0, bytes((0xC0 | channel, program)))]
    for note in notes:
        pitch = int(np.clip(round(note.pitch), 0, 127))
        velocity = int(np.clip(round(note.velocity * 127), 1, 127))
        on = max(0, int(round(note.start / _SECONDS_PER_TICK)))  # a humanised onset before 0 starts at 0
        off = on + max(1, int(round(note.duration / _SECONDS_PER_TICK)))
        events.append((on, 2, bytes((0x90 | channel, pitch, velocity))))
        events.append((off, 1, bytes((0x80 | channel, pitch, 0))))  # note-offs before note-ons
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = bytearray(), 0
    for tick, _, message in events:
        track += _varlen(tick - now) + message
        now = tick
    track += _varlen(0) + bytes((0xFF, 0x2F, 0x00))
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_BEAT)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def render_notes(notes: list, program: int, samples: int, sample_rate: int, soundfont: str | Path,
                 drums: bool = False) -> np.ndarray:
    """Play ``notes`` with GM ``program`` from ``soundfont``: a mono float64 buffer of
    ``samples`` samples at ``sample_rate`` (tails past the end are cut)."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SynthGenError("FluidSynth is not installed — sampled tracks need it "
                            "(apt-get install fluidsynth)")
    out = np.zeros(samples)
    if not notes:
        return out
    with tempfile.TemporaryDirectory(prefix="synthgen-fluidsynth-") as tmp:
        mid, wav = Path(tmp) / "part.mid", Path(tmp) / "part.wav"
        mid.write_bytes(midi_file(notes, program, drums))
        cmd = [exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sample_rate),
               "-O", "float", "-F", str(wav), str(soundfont), str(mid)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0 or not wav.is_file():
            detail = (run.stderr or run.stdout).strip().splitlines()
            raise SynthGenError(f"{soundfont}: FluidSynth could not play it"
                                + (f" ({detail[-1]})" if detail else ""))
        audio = load_audio(wav, sample_rate=None).mean(dim=0).double().numpy()
    if not np.any(audio):
        raise SynthGenError(f"{soundfont}: FluidSynth played nothing with program {program} — "
                            "use a General MIDI SoundFont")
    m = min(samples, len(audio))
    out[:m] = audio[:m]
    return out
