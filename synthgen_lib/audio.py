"""Audio I/O: the only module that reads or writes audio files.

Everything SynthGen handles in memory is a float32 tensor shaped ``(channels, samples)`` at the
project rate (:data:`SAMPLE_RATE`, 32 kHz: the rate of MusicGen's EnCodec). Files are read with
``soundfile`` (WAV, FLAC, OGG, MP3, AIFF); torchaudio is used only for resampling, because
torchaudio >= 2.9 no longer reads or writes files without FFmpeg.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .errors import AudioError
from .fileio import atomic_path

SAMPLE_RATE = 32_000
"""The project rate in Hz: every model and dataset works at this rate unless configured."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
"""File endings treated as audio when a folder is walked."""

_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header without decoding the samples."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    subtype: str = ""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def is_audio_file(path: str | Path) -> bool:
    """True when ``path`` ends with one of :data:`AUDIO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _open_problem(path: Path, exc: Exception) -> AudioError:
    if path.stat().st_size == 0:
        return AudioError(path, "the file is empty (0 bytes)", "re-export or re-copy it")
    return AudioError(
        path,
        f"not a readable audio file ({str(exc).splitlines()[0].strip()})",
        f"use WAV, FLAC, OGG or MP3 ({', '.join(AUDIO_EXTENSIONS)})",
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "no such file", "check the path (is Google Drive mounted?)")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if not path.is_file():  # reading a named pipe waits forever for a writer
        raise AudioError(path, "is not a regular file (a named pipe, socket or device)", "give an audio file")


MIN_RATE, MAX_RATE = 1000, 768_000
"""Sample rates (Hz) an audio file may have: anything else is a broken header."""

_MP3_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 layer III
                 2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}  # MPEG-2/2.5 layer III
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frames(path: Path) -> int | None:
    """Samples per channel in an MP3 counted from its frame headers (``None`` when the file is
    not plain MPEG layer III). libsndfile takes an MP3's length from a Xing header, or guesses it
    from the first frame's bit rate, which cuts a VBR file without that header short.

    The count is kept per file (path, size, modification time): :func:`load_audio` asks for the
    header of every block it reads, and a one-hour file takes about 0.1 s to count."""
    stat = path.stat()
    return _count_mp3_frames(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _count_mp3_frames(path: str, size: int, mtime_ns: int) -> int | None:
    data = Path(path).read_bytes()
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # ID3v2 tag: its size is four 7-bit bytes
        pos = 10 + ((data[6] & 127) << 21 | (data[7] & 127) << 14 | (data[8] & 127) << 7 | (data[9] & 127))
    samples = frames = 0
    while pos + 4 <= len(data):
        h = int.from_bytes(data[pos:pos + 4], "big")
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        bitrate, rate_index, padding = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
        if h >> 21 != 0x7FF or version == 1 or layer != 1 or bitrate in (0, 15) or rate_index == 3:
            break  # not a layer III frame header: the end of the audio (or a trailing tag)
        mpeg1 = version == 3
        rate = _MP3_RATES[version][rate_index]
        kbps = _MP3_BITRATES[1 if mpeg1 else 2][bitrate]
        pos += (144 if mpeg1 else 72) * kbps * 1000 // rate + padding
        samples += 1152 if mpeg1 else 576
        frames += 1
    return samples if frames else None


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose ``data`` chunk claims more bytes than the file holds, return
    ``(claimed, present)``; otherwise ``None``. (libsndfile silently reads such files short.)"""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                present = size - pos - 8
                # 0 and 0xFFFFFFFF mark streamed/RF64 files whose size is not in this field
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > present:
                    return chunk_size, present
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def audio_info(path: str | Path) -> AudioInfo:
    """Read an audio file's rate, channel count and length without decoding it."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise _open_problem(path, exc) from None
    if info.frames <= 0 and path.suffix.lower() != ".mp3":
        raise AudioError(path, "holds no audio samples", "re-export it")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(path, f"its header gives a sample rate of {info.samplerate} Hz, outside "
                         f"{MIN_RATE}-{MAX_RATE} Hz", "the file is damaged; re-export it")
    if info.format == "MP3" and (counted := mp3_frames(path)) is not None \
            and counted - info.frames > max(info.samplerate, 0.01 * counted):
        raise AudioError(path, f"holds {counted / info.samplerate:.1f} s of MP3 audio but only "
                         f"{info.frames / info.samplerate:.1f} s can be decoded (a variable-bit-rate MP3 "
                         "without a length header)", "convert it to WAV or FLAC first, e.g. "
                         "ffmpeg -i song.mp3 song.wav")
    if info.format == "WAV" and (short := _wav_shortfall(path)) is not None:
        claimed, present = short
        raise AudioError(path, f"the file is truncated: its header promises {claimed} bytes of audio, "
                         f"only {present} are there", "re-copy it (an unfinished upload or Drive sync?)")
    return AudioInfo(path=path, sample_rate=int(info.samplerate), channels=int(info.channels),
                     frames=int(info.frames), subtype=str(info.subtype))


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``(..., samples)`` from ``orig_sr`` to ``new_sr`` (band-limited sinc).

    The output has ``ceil(samples * new_sr / orig_sr)`` samples, so whole seconds stay whole
    seconds (1 s at 44.1 kHz becomes exactly 32 000 samples at 32 kHz).
    """
    if orig_sr == new_sr:
        return wav
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(None, f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    import torchaudio.functional as taf  # only needed when rates differ

    return taf.resample(wav, *_resampling_rates(int(orig_sr), int(new_sr)))


MAX_RESAMPLING_FILTER = 4_000_000


def _resampling_rates(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """The rates to resample between. A sinc resampler's filter bank holds about the product of
    the ratio's reduced terms (44100 -> 32000 Hz is 441/320: 141 000 taps; 22254 -> 32000 Hz is
    11127/16000: 178 million, gigabytes); above :data:`MAX_RESAMPLING_FILTER`, each rate is
    taken to the nearest multiple of 50 Hz, which shifts pitch by under 6 cents even at 8 kHz.
    Going back uses the same rounding, so a round trip keeps the length and the timing."""
    g = math.gcd(orig_sr, new_sr)
    if (orig_sr // g) * (new_sr // g) <= MAX_RESAMPLING_FILTER:
        return orig_sr, new_sr
    return max(50, round(orig_sr / 50) * 50), max(50, round(new_sr / 50) * 50)


def convert_channels(wav: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Return ``wav`` ``(channels, samples)`` with the requested number of channels.

    ``None`` keeps what is there. Going to mono averages the channels; mono to N repeats it;
    more channels than asked keeps the first ones (front left/right in WAV channel order).
    """
    have = wav.shape[0]
    if channels is None or channels == have:
        return wav
    if channels < 1:
        raise AudioError(None, f"channels must be at least 1, got {channels}")
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if have == 1:
        return wav.expand(channels, -1).clone()
    if have > channels:
        return wav[:channels].clone()
    raise AudioError(None, f"cannot make {channels} channels from {have}",
                     "use channels=1 or channels=2")


def load_audio(
    path: str | Path,
    sample_rate: int | None = SAMPLE_RATE,
    channels: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Load an audio file as float32 ``(channels, samples)`` in [-1, 1].

    Args:
        path: a WAV, FLAC, OGG or MP3 file (anything soundfile reads).
        sample_rate: resample to this rate; ``None`` keeps the file's rate.
        channels: 1 (mono), 2 (stereo) or ``None`` to keep the file's channels.
        offset: where to start reading, in seconds (only this part is decoded).
        duration: how many seconds to read; ``None`` reads to the end.

    Raises:
        AudioError: the file is missing, empty, not audio, or holds NaN/inf samples.
    """
    info = audio_info(path)
    start = int(round(offset * info.sample_rate))
    stop = None if duration is None else start + int(round(duration * info.sample_rate))
    try:
        data, file_sr = sf.read(str(info.path), start=start, stop=stop, dtype="float32",
                                always_2d=True)
    except Exception as exc:
        raise _open_problem(info.path, exc) from None
    if data.shape[0] == 0 and info.frames > 0 and start < info.frames:
        raise AudioError(info.path, "the header promises audio but no samples could be decoded",
                         "the file is probably truncated; re-export it")
    if not np.isfinite(data).all():
        raise AudioError(info.path, "contains NaN or infinite samples",
                         "re-export it as 16/24-bit PCM")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    wav = convert_channels(wav, channels)
    if sample_rate is not None:
        wav = resample(wav, file_sr, sample_rate)
    return wav


def _player_bytes(wav: torch.Tensor | np.ndarray, sample_rate: int, **format_args) -> bytes:
    """``(channels, samples)`` encoded in memory for an HTML player, rescaled rather than clipped
    above full scale (as :func:`save_audio` does)."""
    import io

    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = np.asarray(data, dtype=np.float32)
    data = data[None] if data.ndim == 1 else data
    peak = float(np.abs(data).max(initial=0.0))
    if peak > 1.0:
        data = data / peak
    buffer = io.BytesIO()
    sf.write(buffer, data.T, int(sample_rate), **format_args)
    return buffer.getvalue()


def wav_bytes(wav: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
    """Encode ``(channels, samples)`` as a 16-bit WAV file in memory (for players in HTML)."""
    return _player_bytes(wav, sample_rate, subtype="PCM_16", format="WAV")


PREVIEW_QUALITY = 0.7  # libsndfile's MP3 compression level: about 85 kbit/s for stereo at 32 kHz


def mp3_bytes(wav: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
    """Encode ``(channels, samples)`` as an MP3 file in memory: a preview for players in HTML,
    about a tenth of :func:`wav_bytes` (the stems themselves are saved at full quality)."""
    return _player_bytes(wav, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
                         compression_level=PREVIEW_QUALITY)


MP3_LEVELS = {320: 0.0, 256: 0.2, 224: 0.3, 192: 0.4, 160: 0.5, 128: 0.65}
"""libsndfile's MP3 compression level for each constant bit rate (kbit/s), as measured on
stereo noise at 32 kHz (libsndfile takes a level, not a rate)."""


def codec_roundtrip(wav: np.ndarray, sample_rate: int, kbps: int) -> np.ndarray:
    """``(channels, samples)`` encoded as a constant-bit-rate MP3 of ``kbps`` (one of
    :data:`MP3_LEVELS`) in memory and decoded again: what a song that went through an MP3 sounds
    like. LAME's gapless header keeps the length and alignment; the result is float32, as long as
    the input."""
    import io

    if kbps not in MP3_LEVELS:
        raise ValueError(f"MP3 bit rate must be one of {sorted(MP3_LEVELS)} kbit/s, got {kbps}")
    data = np.asarray(wav, dtype=np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, data.T, int(sample_rate), format="MP3", subtype="MPEG_LAYER_III",
             compression_level=MP3_LEVELS[kbps], bitrate_mode="CONSTANT")
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    out = np.zeros_like(data)
    n = min(len(decoded), data.shape[-1])
    out[:, :n] = decoded[:n].T
    return out


def _full_scale(bits: int) -> float:
    """The largest value a ``bits``-bit integer format stores (just below 1.0)."""
    return 1.0 - 2.0 ** (1 - bits)


def save_audio(
    path: str | Path,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    bits: int = 16,
    clip: str = "rescale",
) -> Path:
    """Write ``wav`` ``(channels, samples)`` or ``(samples,)`` to a WAV or FLAC file.

    The file is written to a temporary name in the same folder and renamed into place, so an
    interrupted save never leaves a half-written file under the final name.

    Args:
        path: destination; its ending picks the format (``.wav`` or ``.flac``).
        wav: the audio, float in [-1, 1].
        sample_rate: the rate of ``wav`` in Hz.
        bits: 16 or 24 (integer PCM) or 32 (float; WAV only, stores values beyond ±1).
        clip: what to do when an integer format would clip: ``"rescale"`` lowers the whole
            signal so its peak fits (no distortion), ``"clamp"`` cuts the peaks, ``"none"``
            writes as is (only sensible for ``bits=32``).
    Returns:
        The path written.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(path, f"cannot write '{path.suffix}' files", "use .wav or .flac")
    if bits not in _SUBTYPES:
        raise AudioError(path, f"bits must be 16, 24 or 32, got {bits}")
    if bits == 32 and fmt == "FLAC":
        raise AudioError(path, "FLAC cannot store float samples", "use bits=16/24 or .wav")
    if clip not in ("rescale", "clamp", "none"):
        raise AudioError(path, f"clip must be 'rescale', 'clamp' or 'none', got {clip!r}")
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2:
        raise AudioError(path, f"expected (channels, samples) audio, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise AudioError(path, "refusing to save audio containing NaN or infinite samples")
    if bits != 32:
        peak = float(np.abs(data).max(initial=0.0))
        full_scale = _full_scale(bits)
        if peak > full_scale and clip == "rescale":
            data = data * (full_scale / peak)
        elif clip == "clamp":
            data = np.clip(data, -full_scale, full_scale)
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), data.T, int(sample_rate), subtype=_SUBTYPES[bits], format=fmt)
    except (RuntimeError, OSError) as exc:
        raise _write_problem(path, exc) from None
    return path


def save_stems(folder: str | Path, stems: dict[str, torch.Tensor], sample_rate: int, bits: int = 32) -> Path:
    """Write each ``(channels, samples)`` stem as ``folder/NAME.wav``; returns ``folder``.

    Stems that add up to the mix keep their exact levels: float (32-bit) files are written
    as they are, integer ones clamped rather than rescaled (rescaling one would break the sum).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, wav in stems.items():
        save_audio(out / f"{name}.wav", wav, sample_rate, bits=bits, clip="none" if bits == 32 else "clamp")
    return out


class AudioWriter:
    """Write a long file block by block (bounded memory), atomically.

    ::

        with AudioWriter("out.wav", 44100, channels=2, bits=24) as w:
            w.write(block)  # (channels, samples), float in [-1, 1]; integer formats clamp

    The file appears under its final name only when the ``with`` block finishes without error.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, bits: int = 24):
        self.path, self.sample_rate, self.channels, self.bits = Path(path), int(sample_rate), channels, bits
        fmt = _FORMATS.get(self.path.suffix.lower())
        if fmt is None or bits not in _SUBTYPES or (bits == 32 and fmt == "FLAC"):
            raise AudioError(self.path, f"cannot stream {bits}-bit '{self.path.suffix}'", "use .wav (16/24/32) or .flac (16/24)")
        self._format, self._atomic, self._file = fmt, None, None
        self.clipped = 0
        """Samples clamped to full scale so far (integer formats)."""

    def __enter__(self) -> "AudioWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = sf.SoundFile(str(tmp), "w", self.sample_rate, self.channels, _SUBTYPES[self.bits],
                                      format=self._format)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise _write_problem(self.path, exc) from None
        return self

    def write(self, wav: torch.Tensor | np.ndarray) -> None:
        data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        data = np.asarray(data, dtype=np.float32).reshape(self.channels, -1)
        if not np.isfinite(data).all():
            raise AudioError(self.path, "refusing to write NaN or infinite samples (the model's output is broken)",
                             "check the model: it may hold NaN weights")
        if self.bits != 32:
            full_scale = _full_scale(self.bits)
            self.clipped += int(np.count_nonzero(np.abs(data) > full_scale))
            data = np.clip(data, -full_scale, full_scale)
        try:
            self._file.write(data.T)
        except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            raise _write_problem(self.path, exc) from None

    def __exit__(self, *exc) -> bool:
        try:
            self._file.close()
        except (RuntimeError, OSError) as error:
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise _write_problem(self.path, error) from None
        return bool(self._atomic.__exit__(*exc))


def _write_problem(path: Path, exc: BaseException) -> BaseException:
    """A write that failed (disk full, permissions, a Drive mount gone) as one line; anything
    else (Ctrl-C) as it is. The file under ``path``, if any, is left as it was."""
    if not isinstance(exc, (RuntimeError, OSError)):
        return exc
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AudioError(path, f"could not be written ({detail})",
                      "is the disk full? free some space (or check permissions) and run again; "
                      "any earlier version of the file is kept")
