"""SynthMatch: predict the synth's audio descriptors from the mix, then rebuild it from real
synth segments that match them (descriptor prediction + retrieval).

Design:

* **Descriptors** (:meth:`SynthMatch.descriptors`), one frame every ``hop_length`` samples of a
  mono signal: ``n_mfcc`` MFCCs of a ``n_mels``-band log-mel spectrogram and their deltas
  (timbre and its motion), spectral centroid (brightness), spectral flatness (noise vs tone),
  log RMS (loudness) and a 12-bin chroma (pitch class). Each dimension is standardised with
  statistics of the training data, one set for mixes and one for synth stems.
* **Sequence model**: the mix's descriptor frames go through a linear layer, a bidirectional
  LSTM or a Transformer encoder (``arch``), and a linear layer that predicts the synth's
  descriptor frames. Loss: mean squared error on the standardised synth descriptors — the same
  Euclidean distance the retrieval uses, so what training lowers is what matching rewards.
* **Database** (:meth:`SynthMatch.build_database`): ``segment_frames``-frame segments of
  training synth stems (every half segment), keyed by their own descriptor frames, plus one
  silent segment; at most ``database_size``, drawn with ``seed``. It lives in the model's
  buffers, so a checkpoint carries it and ``load_model`` rebuilds the whole system.
* **Synthesis**: the predicted frames are cut into overlapping queries (half a segment apart),
  each query's nearest key is found by a batched matrix-product search, the segment is scaled
  to the predicted loudness (``gain_match``), and segments are overlap-added with Hann
  cross-fades (which sum to one, so a database queried with its own keys gives its audio back).

The estimate is new audio, not a filtered mix: SI-SDR (which needs phase alignment) is low by
construction, so :func:`synthgen_lib.evaluate.log_mel_distance` is the measure that says how
close it sounds. ``retrieval="random"`` (a config field) picks random segments instead, with
the same gain and cross-fades: the baseline that shows the matching is what helps.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torchaudio.functional as taf
from torch import nn
from torch.nn import functional as F

RETRIEVALS = ("nearest", "random")
FLOOR = 1e-7  # power floor (-70 dB) of the spectral descriptors
RMS_FLOOR = 1e-3  # amplitude floor (-60 dBFS) of the log RMS


@dataclass
class SynthMatchConfig:
    """Hyper-parameters of :class:`SynthMatch` (stored in every checkpoint).

    Attributes:
        sample_rate: audio rate in Hz.
        n_fft: STFT size of the descriptors.
        hop_length: samples between descriptor frames.
        n_mels: mel bands under the MFCCs.
        n_mfcc: MFCCs per frame (each with its delta).
        arch: sequence model, ``lstm`` (bidirectional) or ``transformer`` (encoder).
        hidden_size: width of the sequence model.
        num_layers: LSTM or Transformer layers.
        num_heads: attention heads (``transformer``).
        dropout: dropout inside the sequence model.
        segment_frames: descriptor frames per database segment (even; 8 x 512 samples at
            32 kHz = 128 ms); queries start every half segment.
        database_size: most segments kept in the database.
        database_examples: training examples whose synth stems fill the database.
        gain_match: scale each retrieved segment to the predicted loudness.
        retrieval: ``nearest`` (descriptor matching) or ``random`` (the baseline).
        seed: draws the database subset and the random baseline's segments.
    """

    sample_rate: int = 32_000
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    arch: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    dropout: float = 0.1
    segment_frames: int = 8
    database_size: int = 2048
    database_examples: int = 128
    gain_match: bool = True
    retrieval: str = "nearest"
    seed: int = 0

    RANGES: ClassVar[dict] = {"sample_rate": (8000, 192_000), "n_fft": (64, 16384), "hop_length": (16, 16384),
                              "n_mels": (8, 1024), "n_mfcc": (1, 1024), "hidden_size": (2, 8192), "num_layers": (1, 16),
                              "num_heads": (1, 64), "dropout": (0.0, 0.99), "segment_frames": (2, 4096),
                              "database_size": (1, 1_000_000), "database_examples": (1, 100_000)}


def chroma_filterbank(n_fft: int, sample_rate: int, high: float = 5000.0) -> torch.Tensor:
    """``(n_fft // 2 + 1, 12)`` weights from STFT bins to pitch classes (C = 0): a Gaussian of
    half a semitone around each bin's pitch class. Bins below the frequency where a semitone is
    one bin wide (262 Hz at 2048 points and 32 kHz) cannot tell neighbouring notes apart and are
    left out, as are bins above ``high``: a low note's pitch class comes from its harmonics."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    low = (sample_rate / n_fft) / (2 ** (1 / 12) - 1)
    pitch = 12 * torch.log2(freqs.clamp_min(1.0) / 440.0) + 9  # 440 Hz is A, class 9
    distance = (pitch[:, None] - torch.arange(12.0)[None, :] + 6) % 12 - 6
    weights = torch.exp(-0.5 * (distance / 0.5) ** 2)
    return weights * ((freqs >= low) & (freqs <= high)).float()[:, None]


class SynthMatch(nn.Module):
    """Descriptor-matching synth: ``forward(mix)`` ``(batch, channels, samples)`` returns a synth
    track of the same shape, built from database segments (the channels' mean is matched; the
    track is the same in every channel)."""

    family = "synthmatch"
    task = "matcher"  # rebuilds a synth from database segments: no residual to remove
    ddp_broadcast_buffers = False  # its buffers (statistics, database) never change in training
    options: dict[str, str] = {}

    def __init__(self, config: SynthMatchConfig | None = None):
        super().__init__()
        self.config = c = config or SynthMatchConfig()
        if c.arch not in ("lstm", "transformer"):
            raise ValueError(f"arch must be 'lstm' or 'transformer', got {c.arch!r}")
        if c.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {c.retrieval!r}")
        if c.segment_frames < 2 or c.segment_frames % 2:
            raise ValueError(f"segment_frames must be even and at least 2, got {c.segment_frames}")
        n_freq = c.n_fft // 2 + 1
        if c.hop_length > c.n_fft or c.n_mels > n_freq or c.n_mfcc > c.n_mels:
            raise ValueError(f"need hop_length <= n_fft, n_mels <= n_fft // 2 + 1 and n_mfcc <= n_mels, got "
                             f"hop_length={c.hop_length}, n_fft={c.n_fft}, n_mels={c.n_mels}, n_mfcc={c.n_mfcc}")
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        with torch.device("cpu"):  # fixed filterbanks: computed here also when built on the meta device
            self.register_buffer("mel_fbank", taf.melscale_fbanks(n_freq, 0.0, c.sample_rate / 2, c.n_mels,
                                                                  c.sample_rate, norm="slaney", mel_scale="slaney"),
                                 persistent=False)
            self.register_buffer("dct", taf.create_dct(c.n_mfcc, c.n_mels, "ortho"), persistent=False)
            self.register_buffer("chroma_fbank", chroma_filterbank(c.n_fft, c.sample_rate), persistent=False)
        self.register_buffer("freqs", torch.linspace(0, 1, n_freq), persistent=False)  # fraction of Nyquist
        self.dim = d = 2 * c.n_mfcc + 3 + 12
        self.rms_index = 2 * c.n_mfcc + 2
        # standardisation of mix and synth descriptors, and the database: set by build_database
        for name in ("mix_mean", "synth_mean"):
            self.register_buffer(name, torch.zeros(d))
        for name in ("mix_std", "synth_std"):
            self.register_buffer(name, torch.ones(d))
        self.register_buffer("db_keys", torch.zeros(1, c.segment_frames, d))
        self.register_buffer("db_audio", torch.zeros(1, self.segment_samples, dtype=torch.float16))
        # what matching compares: everything but level (MFCC 0 and log RMS), which gain matching sets
        match_dims = torch.ones(d)
        match_dims[[0, self.rms_index]] = 0
        self.register_buffer("match_dims", match_dims, persistent=False)
        self.inp = nn.Linear(d, c.hidden_size)
        if c.arch == "lstm":
            self.core = nn.LSTM(c.hidden_size, c.hidden_size // 2, num_layers=c.num_layers, bidirectional=True,
                                batch_first=True, dropout=c.dropout if c.num_layers > 1 else 0.0)
        else:
            layer = nn.TransformerEncoderLayer(c.hidden_size, c.num_heads, 4 * c.hidden_size, c.dropout,
                                               batch_first=True, norm_first=True)
            self.core = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.hidden_size)
        self.out = nn.Linear(2 * c.hidden_size, d)

    @property
    def segment_samples(self) -> int:
        return self.config.segment_frames * self.config.hop_length

    # -- descriptors -------------------------------------------------------------------------
    def descriptors(self, wav: torch.Tensor) -> torch.Tensor:
        """Descriptor frames ``(batch, frames, dim)`` of mono audio ``(batch, samples)``:
        MFCC, delta-MFCC, centroid, log flatness, log RMS, chroma (unstandardised)."""
        c = self.config
        spec = torch.stft(wav.float(), c.n_fft, c.hop_length, window=self.window, center=True,
                          return_complex=True).transpose(1, 2)
        # scaled so that a sine of amplitude A has a peak bin of power A^2; floors at -70 dB keep
        # silence from spreading the statistics over a range where sounds differ by little
        power = (spec.real ** 2 + spec.imag ** 2) / (self.window.sum() / 2) ** 2  # (batch, frames, n_freq)
        mfcc = (10 * torch.log10(power @ self.mel_fbank + FLOOR)) @ self.dct
        delta = taf.compute_deltas(mfcc.transpose(1, 2)).transpose(1, 2)
        total = power.sum(-1, keepdim=True) + FLOOR
        centroid = (power * self.freqs).sum(-1, keepdim=True) / total
        flatness = torch.log(power + FLOOR).mean(-1, keepdim=True) - torch.log(total / power.shape[-1])
        rms = torch.log(self.rms(power) + RMS_FLOOR)
        chroma = power @ self.chroma_fbank
        chroma = chroma / (chroma.amax(-1, keepdim=True) + 1e-10)
        return torch.cat([mfcc, delta, centroid, flatness, rms, chroma], dim=-1)

    def rms(self, power: torch.Tensor) -> torch.Tensor:
        """Each frame's RMS ``(..., frames, 1)`` from its scaled power spectrum (Parseval, Hann window)."""
        w = self.window
        return (power.sum(-1, keepdim=True) * 2 * w.sum() ** 2 / (4 * w.pow(2).sum() * self.config.n_fft)).sqrt()

    def _layout(self, n: int) -> tuple[int, int]:
        """(queries, padded length) covering ``n`` samples with whole cross-fades: the signal is
        padded by half a segment in front, and queries start every half segment."""
        half = self.segment_samples // 2
        queries = (n - 1) // half + 2
        return queries, (queries - 1) * half + self.segment_samples

    def _pad(self, wav: torch.Tensor) -> torch.Tensor:
        half = self.segment_samples // 2
        return F.pad(wav, (half, self._layout(wav.shape[-1])[1] - half - wav.shape[-1]))

    def _queries(self, frames: torch.Tensor, queries: int) -> torch.Tensor:
        """``(batch, frames, dim)`` -> ``(batch, queries, segment_frames, dim)``."""
        f = self.config.segment_frames
        return frames[:, : (queries - 1) * (f // 2) + f].unfold(1, f, f // 2).transpose(2, 3)

    # -- sequence model ----------------------------------------------------------------------
    def predict(self, mix: torch.Tensor) -> torch.Tensor:
        """Standardised synth descriptor frames predicted from mono ``mix`` ``(batch, samples)``
        (already padded with :meth:`_pad`)."""
        x = self.inp((self.descriptors(mix) - self.mix_mean) / self.mix_std)
        if self.config.arch == "lstm":
            y, _ = self.core(x)
        else:
            y = self.core(x + _positions(x.shape[1], x.shape[2], x.device))
        return self.out(torch.cat([x, self.norm(y)], dim=-1))

    def loss(self, mix: torch.Tensor, synth: torch.Tensor, return_estimate: bool = False):
        """Squared error between predicted and true standardised synth descriptors (mono: the
        channels' mean): loudness on every frame, the shape descriptors that matching uses only
        on frames where the synth sounds (a silent frame has no timbre or pitch to predict).
        The estimate for validation SI-SDR is not made (``None``): retrieved audio is not
        phase-aligned, so SI-SDR would say little."""
        raw = self.descriptors(self._pad(synth.mean(1)))
        target = (raw - self.synth_mean) / self.synth_std
        error = (self.predict(self._pad(mix.mean(1))) - target) ** 2
        sounding = (raw[..., self.rms_index] > math.log(2 * RMS_FLOOR)).float()
        shape = (error * self.match_dims).sum(-1) * sounding
        loss = (error[..., self.rms_index] + shape / self.match_dims.sum()).mean()
        return (loss, None) if return_estimate else loss

    # -- retrieval ---------------------------------------------------------------------------
    def nearest(self, queries: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Index of the nearest database key for each query ``(n, segment_frames, dim)``:
        Euclidean over the shape descriptors (``match_dims``); loudness is matched by gain."""
        keys = (self.db_keys * self.match_dims).flatten(1)
        key_norms = keys.pow(2).sum(-1)
        flat = (queries * self.match_dims).flatten(1)
        return torch.cat([(key_norms - 2 * q @ keys.T).argmin(-1) for q in flat.split(chunk)])

    def render(self, frames: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio ``(batch, length)`` from standardised synth descriptor frames of a padded signal:
        retrieval, loudness matching and overlap-add."""
        c = self.config
        b = frames.shape[0]
        n_queries, padded = self._layout(length)
        queries = self._queries(frames, n_queries).reshape(b * n_queries, c.segment_frames, self.dim)
        if c.retrieval == "nearest":
            index = self.nearest(queries)
        else:
            index = torch.randint(len(self.db_keys), (len(queries),), generator=generator).to(queries.device)
        segments = self.db_audio[index].float()
        if c.gain_match:
            gain = self.loudness(queries) / self.loudness(self.db_keys[index]).clamp_min(1e-4)
            segments = segments * gain.clamp(max=10.0)[:, None]
        segments = segments * torch.hann_window(self.segment_samples, device=segments.device)
        out = F.fold(segments.reshape(b, n_queries, -1).transpose(1, 2), (1, padded),
                     kernel_size=(1, self.segment_samples), stride=(1, self.segment_samples // 2))
        half = self.segment_samples // 2
        return out.reshape(b, padded)[:, half:half + length]

    def loudness(self, frames: torch.Tensor) -> torch.Tensor:
        """Mean RMS ``(...)`` of standardised synth descriptor frames ``(..., frames, dim)``."""
        log_rms = frames[..., self.rms_index] * self.synth_std[self.rms_index] + self.synth_mean[self.rms_index]
        return (log_rms.exp() - RMS_FLOOR).clamp_min(0).mean(-1)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """A synth track for ``mix`` ``(batch, channels, samples)`` at ``config.sample_rate``;
        returns the same shape."""
        b, ch, n = mix.shape
        generator = torch.Generator().manual_seed(self.config.seed)
        synth = self.render(self.predict(self._pad(mix.mean(1))), n, generator)
        return synth[:, None].expand(b, ch, n).contiguous()

    @torch.no_grad()
    def reconstruct(self, synth: torch.Tensor) -> torch.Tensor:
        """The synth rebuilt from the database with its *true* descriptors as queries
        ``(batch, channels, samples)`` -> same shape: the ceiling of what prediction can reach."""
        b, ch, n = synth.shape
        frames = (self.descriptors(self._pad(synth.mean(1))) - self.synth_mean) / self.synth_std
        return self.render(frames, n)[:, None].expand(b, ch, n).contiguous()

    def baselines(self) -> dict[str, nn.Module]:
        """What a score of this model is read against: the same database retrieved at random."""
        return {"random segments": self.with_retrieval("random")}

    def with_retrieval(self, retrieval: str) -> "SynthMatch":
        """A copy with the same weights and database that retrieves with ``retrieval``
        (``random``: the baseline)."""
        twin = SynthMatch(dataclasses.replace(self.config, retrieval=retrieval))
        twin.load_state_dict(self.state_dict())
        return twin.to(self.db_keys.device).train(self.training)

    # -- database ----------------------------------------------------------------------------
    @torch.no_grad()
    def build_database(self, pairs) -> int:
        """Fit the descriptor statistics and fill the database from ``(mix, synth)`` pairs of
        ``(channels, samples)`` tensors (any iterable; training examples). Returns the number of
        segments kept (silent ones are left out; one silent segment is always added)."""
        c = self.config
        mix_frames, synth_frames, keys, audio = [], [], [], []
        device = self.window.device
        for mix, synth in pairs:
            mono_mix, mono_synth = (self._pad(x.to(device).float().mean(0)[None]) for x in (mix, synth))
            mix_frames.append(self.descriptors(mono_mix)[0])
            frames = self.descriptors(mono_synth)
            synth_frames.append(frames[0])
            n_queries, _ = self._layout(synth.shape[-1])
            keys.append(self._queries(frames, n_queries)[0])
            audio.append(mono_synth[0].unfold(0, self.segment_samples, self.segment_samples // 2)[:n_queries])
        if not keys:
            raise ValueError("build_database needs at least one (mix, synth) example")
        for name, frames in (("mix", mix_frames), ("synth", synth_frames)):
            flat = torch.cat(frames)
            getattr(self, f"{name}_mean").copy_(flat.mean(0))
            getattr(self, f"{name}_std").copy_(flat.std(0).clamp_min(1e-3))
        keys_t, audio_t = torch.cat(keys), torch.cat(audio)
        loud = audio_t.pow(2).mean(-1).sqrt() > 1e-4
        keys_t, audio_t = keys_t[loud], audio_t[loud]
        if len(keys_t) > c.database_size - 1:
            keep = torch.randperm(len(keys_t), generator=torch.Generator().manual_seed(c.seed))[: c.database_size - 1]
            keep = keep.sort().values
            keys_t, audio_t = keys_t[keep], audio_t[keep]
        silence = torch.zeros(1, self.segment_samples, device=device)
        silent_key = self._queries(self.descriptors(silence.repeat(1, 2)), 1)[0]
        keys_t, audio_t = torch.cat([keys_t, silent_key]), torch.cat([audio_t, silence])
        self.db_keys = (keys_t - self.synth_mean) / self.synth_std
        self.db_audio = audio_t.to(self.db_audio.dtype)
        return len(keys_t)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the database's size is known only once built: take the stored one's shape
        for name in ("db_keys", "db_audio"):
            stored = state_dict.get(prefix + name)
            if stored is not None and stored.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros(stored.shape, dtype=getattr(self, name).dtype,
                                                device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _positions(length: int, dim: int, device) -> torch.Tensor:
    """Sinusoidal positions ``(length, dim)`` for the Transformer encoder."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table
