"""Synth engines: notes played by LMMS's instrument presets.

A GM SoundFont's "synth" programs are recordings of a few synthesizers, and the procedural
voices (:mod:`.synthetic`) are the project's own: a model trained on both can still learn those
particular sounds rather than what a synth is. LMMS ships about 130 presets of its own synth
engines — TripleOscillator, LB302, Monstro, Organic, BitInvader, OpulenZ (FM), SID, Nescaline,
Watsyn, Vibed — the instruments electronic producers actually use in it. This module plays a
part's notes through one of them: it writes a one-track LMMS project (the preset's instrument
settings, the notes as one pattern at the track's tempo) and renders it with ``lmms render``
(Debian package ``lmms``; headless, about a second per part).

A preset plays as it does in LMMS, its base note included (a bass preset may sound an octave
under the written note). A render is not always bit-identical to the last one (Organic
randomises its oscillators' phases, and now and then another engine differs too): a track
rendered again is the same music, not always the same bits. LMMS 1.2 now and then crashes on a
project it renders the next time: a failed render is tried once more.

The presets are instruments, not songs: LMMS's demo *projects* are reserved for judging and are
never read here. Drum and sample-player presets (Kicker, AudioFileProcessor, ``Drums_*``) are
left out: they are not synth parts.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..errors import SynthGenError

LMMS_DATA = Path("/usr/share/lmms")
PRESETS = LMMS_DATA / "presets"
NOT_SYNTHS = ("AudioFileProcessor/", "Kicker/", "ZynAddSubFX/")
"""Preset folders that are not synth-engine voices (sample players, drum synths) or that need
another engine process (ZynAddSubFX's banks)."""
TICKS_PER_BEAT = 48  # LMMS: 192 ticks to a 4/4 bar
RENDER_RATE = 44_100  # the lowest rate ``lmms render`` writes
RENDER_TIMEOUT = 300  # seconds for one part (a 20 s part takes one or two)


def find_lmms() -> str:
    """The ``lmms`` command, or a one-line error saying how to install it."""
    exe = shutil.which("lmms")
    if exe is None:
        raise SynthGenError("LMMS is not installed — LMMS synth voices need it (apt-get install lmms)")
    return exe


def synth_presets(root: str | Path = PRESETS) -> list[str]:
    """The synth-engine presets under ``root``, as ``Engine/Name.xpf`` paths, sorted (presets
    saved by LMMS before 0.4, which newer LMMS reads only through ``lmms upgrade``, left out)."""
    root = Path(root)
    if not root.is_dir():
        raise SynthGenError(f"{root}: no LMMS presets there (apt-get install lmms)")
    rels = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.xpf"))
    return [r for r in rels if not r.startswith(NOT_SYNTHS) and "/Drums_" not in r
            and "<instrumenttracksettings" in (root / r).read_text(errors="replace")]


def preset_name(path: str | Path) -> str:
    """How a description names a preset (``.../TripleOscillator/Jupiter.xpf``): ``Jupiter
    (TripleOscillator)``."""
    path = Path(path)
    return f"{re.sub(r'[_-]+', ' ', path.stem).strip()} ({path.parent.name})"


def _absolute_samples(element: ET.Element, data: Path) -> None:
    """Name a preset's wave files (``shapes/micro.wav``, ``samples/shapes/...``) in full: they
    are relative to LMMS's sample folder, which a rendering run does not resolve."""
    for node in element.iter():
        for key, value in node.attrib.items():
            if re.search(r"\.(wav|ogg|flac)$", value) and not Path(value).is_absolute():
                found = [p for p in (data / "samples" / value, data / value) if p.is_file()]
                if found:
                    node.set(key, str(found[0]))


def project_xml(notes: list, preset: str | Path, bpm: float) -> bytes:
    """An LMMS project playing ``notes`` (``Note`` s, seconds and MIDI pitches) on ``preset``
    at ``bpm``, rounded to a whole number: LMMS 1.2 drops a tempo's decimals, so ticks counted
    at the exact tempo would drift off the beat (0.15 s over 18 s at 60.49 bpm)."""
    preset = Path(preset)
    try:
        track = ET.parse(preset).getroot().find("instrumenttracksettings/instrumenttrack")
    except (ET.ParseError, OSError) as e:
        raise SynthGenError(f"{preset}: not a readable LMMS preset ({e})") from None
    if track is None:
        raise SynthGenError(f"{preset}: not an LMMS instrument preset (no instrumenttrack)")
    _absolute_samples(track, LMMS_DATA)
    bpm = max(10, int(round(bpm)))
    track.set("vol", "100")
    track.set("pan", "0")
    project = ET.Element("lmms-project", version="1.0", creator="LMMS", creatorversion="1.2.2", type="song")
    ET.SubElement(project, "head", bpm=str(bpm), timesig_numerator="4", timesig_denominator="4",
                  mastervol="100", masterpitch="0")
    container = ET.SubElement(ET.SubElement(project, "song"), "trackcontainer", type="song")
    holder = ET.SubElement(container, "track", type="0", name="synth", muted="0", solo="0")
    holder.append(track)
    tick = 60.0 / (bpm * TICKS_PER_BEAT)
    end = max(int(round((n.start + n.duration) / tick)) for n in notes)
    pattern = ET.SubElement(holder, "pattern", pos="0", len=str(192 * math.ceil((end + 1) / 192)), name="",
                            muted="0", steps="16", type="1")
    for n in notes:
        # LMMS's key 57 is A4, MIDI's 69
        ET.SubElement(pattern, "note", key=str(int(n.pitch) - 12), pos=str(int(round(n.start / tick))),
                      len=str(max(1, int(round(n.duration / tick)))), vol=str(int(np.clip(round(100 * n.velocity), 1, 200))),
                      pan="0")
    return ET.tostring(project, xml_declaration=True, encoding="utf-8")


def render_preset(notes: list, preset: str | Path, samples: int, sample_rate: int, bpm: float = 120.0) -> np.ndarray:
    """Play ``notes`` on an LMMS ``preset``: a mono float64 buffer of ``samples`` samples at
    ``sample_rate`` (tails past the end are cut)."""
    out = np.zeros(samples)
    if not notes:
        return out
    exe = find_lmms()
    with tempfile.TemporaryDirectory(prefix="synthgen-lmms-") as tmp:
        mmp, wav = Path(tmp) / "part.mmp", Path(tmp) / "part.wav"
        mmp.write_bytes(project_xml(notes, preset, bpm))
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": tmp}  # no display, no user config
        cmd = [exe, "--allowroot", "render", str(mmp), "-o", str(wav), "-f", "wav", "-a",
               "-s", str(max(RENDER_RATE, sample_rate)), "-x", "1"]
        why = ""
        for _ in range(2):  # LMMS 1.2 now and then crashes on a project it renders the next time
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                                     timeout=RENDER_TIMEOUT)
            except subprocess.TimeoutExpired:
                why = f"no answer in {RENDER_TIMEOUT} s"
                continue
            except OSError as e:
                raise SynthGenError(f"{exe}: LMMS could not be started ({e})") from None
            if run.returncode == 0 and wav.is_file():
                break
            why = f"exit status {run.returncode}"
        else:
            raise SynthGenError(f"{preset}: LMMS could not render it ({why})")
        audio = load_audio(wav, sample_rate=sample_rate).mean(dim=0).double().numpy()
    if not np.any(audio):
        raise SynthGenError(f"{preset}: LMMS played nothing with this preset")
    m = min(samples, len(audio))
    out[:m] = audio[:m]
    return out
