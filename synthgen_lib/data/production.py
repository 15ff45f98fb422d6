"""A production chain for rendered tracks: what a mixing and mastering engineer does to stems.

Real songs are not the sum of dry renders. Every stem goes through a channel strip (equaliser,
compressor, saturation, reverb, stereo width, level) and the mix through a bus compressor, a
mastering limiter and often an MP3 encoder; separators trained on unprocessed sums degrade on
such mixes (LimitAug, Jeon et al. 2022). This module draws one such chain per track,
deterministically from a random generator, and applies it so that the stems still sum to the mix:

* **Channel strip** (per stem, and per synth part, so that each part keeps its own chain), in
  order: an equaliser of a low shelf, one or two peaks and a high shelf (RBJ biquads, each
  ±6 dB); saturation (``tanh`` soft clipping: unchanged at low level, the peaks rounded off,
  3–12 dB of drive); a compressor (a feed-forward gain computer on the stem's own level, ratio
  2–6, threshold a few dB around its RMS, attack 1–30 ms, release 50–300 ms); a room reverb (a
  synthetic impulse response: sparse early reflections, then a decaying noise tail whose highs
  die faster, RT60 0.3–2.5 s, 5–35 % wet); stereo width (mid/side, side scaled 0.5–1.5); and a
  gain of ±3 dB. Each effect is drawn on or off on its own.
* **Mix bus**: a bus compressor and a look-ahead peak limiter compute one gain curve from the
  mix and apply it to *every* stem alike, which is what the bus does to the stems' sum, so the
  processed stems sum to the processed mix exactly.
* **Codec**: the mix through an MP3 encoder and decoder at 128–320 kbit/s
  (:func:`~synthgen_lib.audio.codec_roundtrip`). The codec is not additive, so its error (the
  decoded mix minus the mix) is kept as a stem of its own, ``codec``: part of what is not the
  synth, the way a separator meets it in an MP3 of a real song.

The synth target is the synth stem after its own channel strip and the bus gain: the synth as
it sounds inside the mix.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

from ..audio import codec_roundtrip

BLOCK_S = 0.001  # gain computers and envelopes run on 1 ms blocks


@dataclass(frozen=True)
class Filter:
    """One equaliser band: ``kind`` ``lowshelf``, ``peak`` or ``highshelf`` at ``freq`` Hz."""

    kind: str
    freq: float
    gain_db: float
    q: float = 0.7


@dataclass(frozen=True)
class Compressor:
    """A feed-forward compressor. ``threshold_db`` is relative to the signal's RMS level;
    above it the level grows ``1 / ratio`` dB per dB. Times in seconds."""

    threshold_db: float
    ratio: float
    attack: float
    release: float


@dataclass(frozen=True)
class Room:
    """A synthetic room: reverberation time (s), wet level re the dry signal, pre-delay (s) and
    how much faster the highs decay than the lows (``damping`` 0: alike)."""

    rt60: float
    wet: float
    predelay: float
    damping: float
    seed: int


@dataclass(frozen=True)
class StemChain:
    """One stem's channel strip; an effect that is ``None`` (or empty) is off."""

    eq: tuple[Filter, ...] = ()
    drive_db: float | None = None
    compressor: Compressor | None = None
    room: Room | None = None
    width: float = 1.0
    gain_db: float = 0.0


@dataclass(frozen=True)
class Limiter:
    """A look-ahead peak limiter: the mix is raised by ``drive_db`` (re its own peak at
    ``ceiling_db``) and held under ``ceiling_db`` dBFS; times in seconds."""

    drive_db: float
    ceiling_db: float
    lookahead: float
    release: float


@dataclass(frozen=True)
class Production:
    """A track's whole chain: one :class:`StemChain` per stem name, the bus and the codec."""

    stems: dict[str, StemChain] = field(default_factory=dict)
    bus: Compressor | None = None
    limiter: Limiter | None = None
    mp3_kbps: int | None = None
    peak: float = 0.9  # the mix's peak without a limiter


MP3_RATES = (128, 160, 192, 224, 256, 320)


def draw_chain(rng: np.random.Generator) -> StemChain:
    """A random channel strip (the module doc gives the ranges)."""
    eq = [Filter("lowshelf", float(rng.uniform(80, 250)), float(rng.uniform(-6, 6)))]
    for _ in range(int(rng.integers(1, 3))):
        eq.append(Filter("peak", float(np.exp(rng.uniform(np.log(200), np.log(8000)))), float(rng.uniform(-6, 6)),
                         float(rng.uniform(0.5, 2.0))))
    eq.append(Filter("highshelf", float(rng.uniform(4000, 12000)), float(rng.uniform(-6, 6))))
    on = rng.uniform(size=4)
    return StemChain(
        eq=tuple(eq) if on[0] < 0.8 else (),
        drive_db=float(rng.uniform(3, 12)) if on[1] < 0.3 else None,
        compressor=Compressor(float(rng.uniform(-6, 3)), float(rng.uniform(2, 6)), float(rng.uniform(0.001, 0.03)),
                              float(rng.uniform(0.05, 0.3))) if on[2] < 0.6 else None,
        room=Room(float(rng.uniform(0.3, 2.5)), float(rng.uniform(0.05, 0.35)), float(rng.uniform(0, 0.04)),
                  float(rng.uniform(0, 0.8)), int(rng.integers(2 ** 31))) if on[3] < 0.5 else None,
        width=float(rng.uniform(0.5, 1.5)),
        gain_db=float(rng.uniform(-3, 3)))


def draw_production(rng: np.random.Generator, stems: list[str]) -> Production:
    """A random chain for a track with these stem names (a channel strip each, drawn in order)."""
    chains = {name: draw_chain(rng) for name in stems}
    on = rng.uniform(size=3)
    bus = Compressor(float(rng.uniform(-8, -2)), float(rng.uniform(1.5, 4)), float(rng.uniform(0.005, 0.03)),
                     float(rng.uniform(0.1, 0.4)))
    limiter = Limiter(float(rng.uniform(0, 8)), float(rng.uniform(-1.0, -0.1)), 0.005, float(rng.uniform(0.05, 0.2)))
    kbps = int(rng.choice(MP3_RATES))
    return Production(chains, bus if on[0] < 0.7 else None, limiter if on[1] < 0.8 else None,
                      kbps if on[2] < 0.5 else None, float(rng.uniform(0.5, 0.95)))


# --------------------------------------------------------------------------------------------
# The effects, each on (channels, samples) float arrays
# --------------------------------------------------------------------------------------------

def biquad(band: Filter, sample_rate: int) -> np.ndarray:
    """``band`` as one second-order section (RBJ's audio EQ cookbook), for ``sosfilt``."""
    a = 10 ** (band.gain_db / 40)
    w0 = 2 * np.pi * min(band.freq, 0.45 * sample_rate) / sample_rate
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * band.q)
    if band.kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sq = 2 * np.sqrt(a) * alpha
        sign = 1 if band.kind == "lowshelf" else -1
        b = [a * ((a + 1) - sign * (a - 1) * cos + sq), sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
             a * ((a + 1) - sign * (a - 1) * cos - sq)]
        den = [(a + 1) + sign * (a - 1) * cos + sq, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - sq]
    return np.array([[*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]]])


def equalise(x: np.ndarray, sample_rate: int, bands: tuple[Filter, ...]) -> np.ndarray:
    """``x`` through each band in turn."""
    if not bands:
        return x
    sos = np.concatenate([biquad(b, sample_rate) for b in bands])
    return signal.sosfilt(sos, x, axis=-1)


def saturate(x: np.ndarray, drive_db: float) -> np.ndarray:
    """Soft clipping: ``tanh(k x) / k`` with ``k`` putting the peak ``drive_db`` into the curve;
    quiet samples pass unchanged (slope 1 at zero), the peaks are rounded off."""
    k = 10 ** (drive_db / 20) / (np.abs(x).max() + 1e-12)
    return np.tanh(k * x) / k


def _smooth(target_db: np.ndarray, attack: float, release: float) -> np.ndarray:
    """A gain-reduction curve (dB >= 0 per block) followed with an attack time when it rises and
    a release time when it falls (one-pole, on the block grid)."""
    up, down = np.exp(-BLOCK_S / max(attack, BLOCK_S)), np.exp(-BLOCK_S / max(release, BLOCK_S))
    out = np.empty_like(target_db)
    level = 0.0
    for i, t in enumerate(target_db.tolist()):
        coef = up if t > level else down
        level = coef * level + (1 - coef) * t
        out[i] = level
    return out


def _blocks(x: np.ndarray, block: int, fill: float) -> np.ndarray:
    """``x`` ``(..., samples)`` cut into blocks of ``block`` samples, ``(..., blocks, block)``,
    the last one padded with ``fill``."""
    n = x.shape[-1]
    padded = np.full((*x.shape[:-1], -(-n // block) * block), fill, dtype=float)
    padded[..., :n] = x
    return padded.reshape(*x.shape[:-1], -1, block)


def _block_gain(gain_blocks: np.ndarray, samples: int, block: int) -> np.ndarray:
    """A per-block gain curve as a per-sample one (linear between block centres)."""
    centres = (np.arange(len(gain_blocks)) + 0.5) * block
    return np.interp(np.arange(samples), centres, gain_blocks)


def compressor_gain(x: np.ndarray, sample_rate: int, comp: Compressor) -> np.ndarray:
    """The per-sample gain (linear, ``<= 1``) a compressor applies to ``x``: its level (RMS over
    1 ms blocks, both channels linked) above the threshold is reduced to ``1 / ratio``."""
    block = max(1, int(BLOCK_S * sample_rate))
    n = x.shape[-1]
    power = (_blocks(x, block, 0.0) ** 2).mean(axis=(0, 2))
    level_db = 10 * np.log10(power + 1e-12)
    rms_db = 10 * np.log10(float(np.mean(x ** 2)) + 1e-12)
    over = np.maximum(level_db - (rms_db + comp.threshold_db), 0.0)
    reduction = _smooth(over * (1 - 1 / comp.ratio), comp.attack, comp.release)
    return _block_gain(10 ** (-reduction / 20), n, block)


def compress(x: np.ndarray, sample_rate: int, comp: Compressor) -> np.ndarray:
    """``x`` through a compressor, with make-up gain to its RMS level before."""
    y = x * compressor_gain(x, sample_rate, comp)
    return y * (_rms(x) / _rms(y))


def room_response(room: Room, sample_rate: int, channels: int) -> np.ndarray:
    """A synthetic impulse response ``(channels, samples)`` of unit energy: sparse early
    reflections in the first 50 ms, then decorrelated noise per channel decaying by 60 dB in
    ``rt60`` seconds, the highs faster by ``damping`` (a low-pass that closes over the tail)."""
    rng = np.random.default_rng(room.seed)
    n = int((room.predelay + room.rt60) * sample_rate) + 1
    start = int(room.predelay * sample_rate)
    t = np.arange(n - start) / sample_rate
    ir = np.zeros((channels, n))
    tail = rng.standard_normal((channels, n - start)) * np.exp(-6.91 * t / room.rt60)
    # the highs die faster: blend the tail with a low-passed copy, more of it later in the tail
    dull = signal.sosfilt(signal.butter(2, 2000, fs=sample_rate, output="sos"), tail, axis=-1)
    blend = np.clip(room.damping * t / (0.3 * room.rt60), 0, 1)
    ir[:, start:] = (1 - blend) * tail + blend * dull
    for c in range(channels):  # the tail starts at about unit amplitude: the reflections stand out of it
        for _ in range(6):
            k = start + int(rng.uniform(0.002, 0.05) * sample_rate)
            if k < n:
                ir[c, k] += rng.uniform(-3, 3)
    return ir / np.sqrt((ir ** 2).sum(-1, keepdims=True) + 1e-12)


def reverberate(x: np.ndarray, sample_rate: int, room: Room) -> np.ndarray:
    """``x`` plus its room's reverberation at ``room.wet`` of the dry RMS level."""
    ir = room_response(room, sample_rate, x.shape[0])
    tail = signal.oaconvolve(x, ir, axes=-1)[:, : x.shape[-1]]
    return x + room.wet * tail * (_rms(x) / _rms(tail))


def widen(x: np.ndarray, width: float) -> np.ndarray:
    """Mid/side stereo width: the side signal scaled by ``width`` (1: unchanged; mono passes)."""
    if x.shape[0] != 2:
        return x
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2 * width
    return np.stack([mid + side, mid - side])


def channel_strip(x: np.ndarray, sample_rate: int, chain: StemChain) -> np.ndarray:
    """``x`` through ``chain``: equaliser, saturation, compressor, reverb, width and gain."""
    if not np.any(x):
        return x
    x = equalise(x, sample_rate, chain.eq)
    if chain.drive_db is not None:
        x = saturate(x, chain.drive_db)
    if chain.compressor is not None:
        x = compress(x, sample_rate, chain.compressor)
    if chain.room is not None:
        x = reverberate(x, sample_rate, chain.room)
    return widen(x, chain.width) * 10 ** (chain.gain_db / 20)


def limiter_gain(mix: np.ndarray, sample_rate: int, limiter: Limiter) -> np.ndarray:
    """The per-sample gain of a look-ahead limiter on ``mix``, its drive included: after it no
    sample of ``mix`` exceeds the ceiling. The gain each peak needs is spread over the look-ahead
    before it (a minimum then a moving average over as many samples, so the gain is already low
    enough when the peak arrives) and recovers with the release time."""
    peak = np.abs(mix).max(axis=0)
    ceiling = 10 ** (limiter.ceiling_db / 20)
    drive = 10 ** (limiter.drive_db / 20) * ceiling / (peak.max() + 1e-12)
    need = np.minimum(1.0, ceiling / (peak * drive + 1e-12))
    size = max(1, int(limiter.lookahead * sample_rate))
    held = ndimage.minimum_filter1d(need, 2 * size + 1, mode="nearest")
    smooth = ndimage.uniform_filter1d(held, size, mode="nearest")
    block = max(1, int(BLOCK_S * sample_rate))
    reduction = -20 * np.log10(_blocks(smooth, block, 1.0).min(axis=1))
    released = _smooth(reduction, 0.0, limiter.release)  # instant attack: the look-ahead did that
    gain = np.minimum(smooth, _block_gain(10 ** (-np.maximum(released, reduction) / 20), len(smooth), block))
    return drive * gain


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)) + 1e-12)


def produce(stems: dict[str, np.ndarray], parts: list[np.ndarray], sample_rate: int,
            production: Production) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """``stems`` (``{name: (channels, samples)}``, ``synth`` among them) and the synth's
    ``parts`` (two or more summing to it, or none) through ``production``.

    With parts, each part gets its own strip (drawn as ``synth part1``, ``synth part2``...)
    and the synth is their sum. Returns the processed stems and parts (float64), the ``codec``
    stem added when the chain has one; the stems sum to the produced mix, whose peak is the
    limiter's ceiling, or ``production.peak`` without a limiter (before the codec).
    """
    out: dict[str, np.ndarray] = {}
    if parts:
        parts = [channel_strip(p, sample_rate, production.stems[f"synth part{k + 1}"]) for k, p in enumerate(parts)]
    for name, x in stems.items():
        if name == "synth" and parts:
            out[name] = np.sum(parts, axis=0)
        else:
            out[name] = channel_strip(x, sample_rate, production.stems[name])
    mix = np.sum(list(out.values()), axis=0)
    gain = np.ones(mix.shape[-1])
    if production.bus is not None:
        gain = compressor_gain(mix, sample_rate, production.bus)
        gain *= _rms(mix) / _rms(mix * gain)
    if production.limiter is not None:
        gain = gain * limiter_gain(mix * gain, sample_rate, production.limiter)
    else:
        gain = gain * production.peak / (np.abs(mix * gain).max() + 1e-12)
    out = {k: v * gain for k, v in out.items()}
    parts = [p * gain for p in parts]
    if production.mp3_kbps is not None:
        mix = np.sum(list(out.values()), axis=0)
        out["codec"] = codec_roundtrip(mix, sample_rate, production.mp3_kbps).astype(np.float64) - mix
    return out, parts


def production_names(stems: list[str], parts: int) -> list[str]:
    """The chain names :func:`produce` looks up for a track with these stems and ``parts``
    synth parts (two or more, or 0)."""
    return [f"synth part{k + 1}" for k in range(parts)] + [s for s in stems if not (s == "synth" and parts)]
