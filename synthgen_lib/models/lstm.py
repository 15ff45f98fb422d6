"""SynthLSTM: a recurrent masker that reads the mix's log-mel spectrogram.

Design (Open-Unmix is the reference point):

* **Input**: the log-mel spectrogram of the mix (``n_mels`` bands of the power STFT), one
  channel at a time. A per-band shift and scale, initialised from training-data statistics
  (:meth:`SynthLSTM.set_input_stats`) and learnt afterwards, normalise it.
* **Convolutional front end** (optional, ``conv_channels > 0``): two small 2-D convolutions
  over (time, mel band) of the normalised features, whose ``conv_out`` feature maps are fed to
  the first linear layer beside the features themselves. A dense layer over mel bands must
  learn a timbre cue (a harmonic's spacing, a vibrato's wiggle, a noisy attack) separately at
  every pitch; a convolution shares it across bands and frames, which is what lets a cue learnt
  on one piece's notes apply to another's. A model grown from a checkpoint without a front end
  (:meth:`SynthLSTM.load_state_dict`) starts as that model.
* **Core**: a linear layer to ``hidden_size``, a bidirectional LSTM over time, and a skip
  connection that concatenates the LSTM input with its output before two more linear layers.
* **Output**: a mask in [0, 1] per *linear* STFT bin, multiplied with the mix's complex STFT
  and turned back into audio with the mix phase (no Griffin-Lim: the phase is the mix's,
  which is right wherever the synth dominates a bin). A mask cannot invent energy, so the
  estimate is always a filtered version of the mix.
* **Text queries** (optional, ``queries=True``): a sentence embedding of a description ("warm
  pad") scales and shifts the LSTM's input, the features after it and the mask's logits per bin
  (FiLM, :mod:`.query`), so the mask keeps the described part only, and a description that
  names no part of the mix closes it. No query (or an empty one) skips the three modulations:
  the result is the unconditioned mask of every synth part. A query head (``query_head > 0``)
  adds a recurrent network of its own over the features and the mel input, whose output is
  added to the mask logits of a query: what tells parts apart note by note can be learnt there
  while the separator stays as it was. A presence gate (``query_gate``, :class:`.query.QueryGate`)
  reads the features of the whole stretch with the query and scales the answer by how sure it
  is that the part asked for plays there, meant to answer a description of a part the mix lacks
  with near silence rather than whatever the mask lets through (trained alone on a frozen
  separator, it did not learn to tell: docs/experiments.md; :mod:`synthgen_lib.roles` checks the answer
  itself instead, in ``separate``).
* **Wiener-style refinement** (``wiener=True`` at inference): the estimated synth and residual
  magnitudes are turned into a power-ratio (soft Wiener) mask, which sharpens bins where one
  source clearly dominates.

Loss: the phase-sensitive squared error ``mean |M * X - S|^2`` between the masked mix STFT and
the synth's complex STFT (see :func:`SynthLSTM.loss`). The estimate is ``istft(M * X)``, so by
Parseval this is, up to the window's constant gain, the squared error of the output waveform:
the loss weighs errors by energy, as SI-SDR and SDR do. Per bin it is
``|X|^2 (M - Re(S / X))^2`` plus a constant, so its best real mask in [0, 1] is the
phase-sensitive mask ``clip(Re(S / X), 0, 1)``, which scores about 1.5 dB above the ideal
ratio mask on held-out synthetic tracks, where a magnitude loss aims at the ratio mask. In
3-minute CPU runs of the ``bench.peers`` setting it beat L1 on magnitudes (our first choice)
by about 1.5 dB median SI-SDR and MSE on magnitudes (Open-Unmix's) by about 0.3 dB.

``loss="sdr"`` instead scores each channel of each example on its own: the negative SDR of the
masked spectrum, ``10 log10((|M X - S|^2 + d) / (|S|^2 + d))`` summed over its bins, with
``d`` a thousandth of the mix's energy (so a silent synth asks for silence, and no example counts
beyond about 30 dB). Squared error weighs an example by its energy, so windows where the synth is
quiet under a loud accompaniment (where SI-SDR, which is averaged window by window, has most to
gain) hardly count; this weighs every window alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .query import (EMBEDDINGS, QUERY_DIM, QUERY_OPTION, QueryFiLM, QueryGate, QueryHead, asked, grow_query_layers,
                    presence)


@dataclass
class SynthLSTMConfig:
    """Hyper-parameters of :class:`SynthLSTM` (stored in every checkpoint).

    Attributes:
        sample_rate: audio rate in Hz the model works at.
        n_fft: STFT size (2048 at 32 kHz: 64 ms frames).
        hop_length: STFT hop in samples.
        n_mels: mel bands of the input features.
        hidden_size: width of the linear layers and of the LSTM (both directions together).
        num_layers: stacked bidirectional LSTM layers.
        dropout: dropout between LSTM layers.
        conv_channels: channels of the convolutional front end; 0 leaves it out (the model
            before the front end existed).
        conv_out: feature maps the front end hands to the first linear layer, each as wide as
            ``n_mels``.
        loss: ``"psa"`` (phase-sensitive squared error over the batch; the default, and what
            checkpoints from before the setting trained with) or ``"sdr"`` (negative SDR per
            example and channel; see the module doc).
        queries: take a text query (see the module doc); a checkpoint without query layers
            grows them (at zero: it computes what it did) when loaded with ``queries=True``.
        query_embedding: how queries are embedded, ``minilm`` or ``ngram`` (see :mod:`.query`).
        query_head: width of a recurrent query head (:class:`.query.QueryHead`) that reads the
            features beside the mel input and adds to the mask logits of a query; 0 leaves it
            out (queries then act by FiLM alone, as before the head existed).
        query_gate: a presence gate (:class:`.query.QueryGate`) that scales the answer to a query
            by how sure it is that the part asked for plays in the stretch; grown open.
    """

    sample_rate: int = 32_000
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    hidden_size: int = 256
    num_layers: int = 3
    dropout: float = 0.2
    conv_channels: int = 0
    conv_out: int = 4
    loss: str = "psa"
    queries: bool = False
    query_embedding: str = "minilm"
    query_head: int = 0
    query_gate: bool = False

    RANGES: ClassVar[dict] = {"sample_rate": (8000, 192_000), "n_fft": (64, 16384), "hop_length": (16, 16384),
                              "n_mels": (8, 1024), "hidden_size": (2, 8192), "num_layers": (1, 16),
                              "dropout": (0.0, 0.99), "conv_channels": (0, 256), "conv_out": (1, 64),
                              "query_head": (0, 4096)}


LOSSES = ("psa", "sdr")


class SynthLSTM(nn.Module):
    """Mask-based synth separator over the mix's log-mel spectrogram.

    ``forward(mix)`` takes ``(batch, channels, samples)`` and returns the synth estimate with
    the same shape; channels are processed independently.
    """

    family = "lstm"
    task = "separator"
    options = {"wiener": "refine the mask into a power-ratio (Wiener-style) mask"}

    def __init__(self, config: SynthLSTMConfig | None = None):
        super().__init__()
        self.config = c = config or SynthLSTMConfig()
        n_freq = c.n_fft // 2 + 1
        if c.hop_length > c.n_fft or c.n_mels > n_freq:
            raise ValueError(f"need hop_length <= n_fft and n_mels <= n_fft // 2 + 1, got hop_length={c.hop_length}, "
                             f"n_fft={c.n_fft}, n_mels={c.n_mels}")
        if c.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {c.loss!r}")
        if c.query_embedding not in EMBEDDINGS:
            raise ValueError(f"query_embedding must be one of {', '.join(EMBEDDINGS)}, not {c.query_embedding!r}")
        import torchaudio.functional as taf

        with torch.device("cpu"):  # a fixed filterbank: computed here also when built on the meta device
            fbank = taf.melscale_fbanks(n_freq, 0.0, c.sample_rate / 2, c.n_mels, c.sample_rate,
                                        norm="slaney", mel_scale="slaney")
        self.register_buffer("mel_fbank", fbank, persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.input_mean = nn.Parameter(torch.zeros(c.n_mels))
        self.input_scale = nn.Parameter(torch.ones(c.n_mels))
        self.conv = None if c.conv_channels == 0 else nn.Sequential(
            nn.Conv2d(1, c.conv_channels, (3, 5), padding=(1, 2)), nn.GELU(),
            # dilated in time: 7 frames (about 0.1 s) see a vibrato's or a tremolo's swing
            nn.Conv2d(c.conv_channels, c.conv_channels, 3, padding=(2, 1), dilation=(2, 1)), nn.GELU(),
            nn.Conv2d(c.conv_channels, c.conv_out, 1))
        self.fc1 = nn.Linear(self._fc1_inputs(c), c.hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(c.hidden_size)
        self.lstm = nn.LSTM(c.hidden_size, c.hidden_size // 2, num_layers=c.num_layers,
                            bidirectional=True, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * c.hidden_size, c.hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(c.hidden_size)
        self.fc3 = nn.Linear(c.hidden_size, n_freq)
        if c.queries:  # the instance's options then include the query
            self.options = {**SynthLSTM.options, "query": QUERY_OPTION}
            self.query_in = QueryFiLM(QUERY_DIM, c.hidden_size)
            self.query_mid = QueryFiLM(QUERY_DIM, c.hidden_size)
            self.query_out = QueryFiLM(QUERY_DIM, n_freq)
        self.query_head = (QueryHead(QUERY_DIM, c.hidden_size + c.n_mels, c.query_head, n_freq)
                           if c.queries and c.query_head else None)
        self.query_gate = QueryGate(QUERY_DIM, c.hidden_size + c.n_mels) if c.queries and c.query_gate else None

    @staticmethod
    def _fc1_inputs(c: SynthLSTMConfig) -> int:
        return c.n_mels * (1 + (c.conv_out if c.conv_channels else 0))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights; a checkpoint of the same model *without* the convolutional front end
        also loads into one with it (fine-tuning a bundled model with a front end): the front
        end keeps its random initial weights and the first linear layer gets zero weights for
        the front end's features, so the grown model computes exactly what the checkpoint did
        (and both get gradients: only one side of the product starts at zero). Query layers
        grow the same way, at zero."""
        state = grow_query_layers(self, dict(state_dict)) if self.config.queries else dict(state_dict)
        fc1 = state.get("fc1.weight")
        if self.conv is not None and fc1 is not None and fc1.shape[1] == self.config.n_mels \
                and not any(k.startswith("conv.") for k in state):
            grown = torch.zeros_like(self.fc1.weight)
            grown[:, :fc1.shape[1]] = fc1
            state["fc1.weight"] = grown
            state.update({f"conv.{k}": v for k, v in self.conv.state_dict().items()})
        return super().load_state_dict(state, strict=strict, assign=assign)

    # -- spectra -----------------------------------------------------------------------------
    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> complex ``(batch, frames, n_freq)``."""
        c = self.config
        spec = torch.stft(wav.float(), c.n_fft, c.hop_length, window=self.window, center=True,
                          return_complex=True)
        return spec.transpose(1, 2)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        c = self.config
        return torch.istft(spec.transpose(1, 2), c.n_fft, c.hop_length, window=self.window,
                           center=True, length=length)

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """Log-mel features ``(batch, frames, n_mels)`` of a complex spectrogram (before the
        learnt normalisation)."""
        power = spec.real ** 2 + spec.imag ** 2
        return torch.log10(power @ self.mel_fbank + 1e-8)

    @torch.no_grad()
    def set_input_stats(self, features: torch.Tensor) -> None:
        """Initialise the input normalisation from features ``(..., n_mels)`` of training mixes."""
        flat = features.reshape(-1, features.shape[-1])
        self.input_mean.copy_(flat.mean(0))
        self.input_scale.copy_(1.0 / flat.std(0).clamp_min(1e-3))

    # -- model -------------------------------------------------------------------------------
    def mask(self, spec: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """The synth mask ``(batch, frames, n_freq)`` in [0, 1] for a mix spectrogram, of the part
        ``query`` ``(batch, QUERY_DIM)`` describes (rows of zeros, or ``None``: every part)."""
        mask, gate = self._mask(spec, query)
        return mask if gate is None else QueryGate.scale(mask, gate, query)

    def _mask(self, spec: torch.Tensor, query: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mask, gate logits)``: the mask before the presence gate, and the gate's logits
        ``(batch,)`` (``None`` without a gate or a query)."""
        if not self.config.queries:
            query = None
        x = mels = (self.features(spec) - self.input_mean) * self.input_scale
        b, t, _ = x.shape
        if self.conv is not None:  # (b, t, mels) -> (b, t, mels * (1 + conv_out))
            maps = self.conv(x.unsqueeze(1)).permute(0, 2, 1, 3).reshape(b, t, -1)
            x = torch.cat([x, maps], dim=-1)
        x = torch.tanh(self.bn1(self.fc1(x).reshape(b * t, -1)).reshape(b, t, -1))
        if query is not None:
            x = self.query_in(x, query)
        y, _ = self.lstm(x)
        x = torch.cat([x, y], dim=-1)
        x = torch.relu(self.bn2(self.fc2(x).reshape(b * t, -1)).reshape(b, t, -1))
        if query is None:
            return torch.sigmoid(self.fc3(x)), None
        logits = self.query_out(self.fc3(self.query_mid(x, query)), query)
        read = torch.cat([x, mels], dim=-1)  # what the head and the gate read
        if self.query_head is not None:
            logits = logits + self.query_head(read, query)
        gate = None if self.query_gate is None else self.query_gate(read, query)
        return torch.sigmoid(logits), gate

    def embed_query(self, texts: list[str | None]) -> torch.Tensor:
        """Query embeddings ``(len(texts), QUERY_DIM)`` of descriptions, as this model was trained
        with them (``None`` or blank: no query)."""
        from .query import embed_queries

        return embed_queries(texts, self.config.query_embedding).to(self.input_mean.device)

    @staticmethod
    def _per_channel(query: torch.Tensor | None, channels: int) -> torch.Tensor | None:
        return None if query is None else query.repeat_interleave(channels, dim=0)

    def forward(self, mix: torch.Tensor, wiener: bool = False, query: str | torch.Tensor | None = None) -> torch.Tensor:
        """Separate the synth: ``mix`` ``(batch, channels, samples)`` -> same shape.

        Args:
            mix: the mixture at ``config.sample_rate``.
            wiener: refine the mask into a power-ratio (Wiener-style) mask.
            query: the synth part to keep: a description (for the whole batch) or embeddings
                ``(batch, QUERY_DIM)`` from :meth:`embed_query`; ``None`` or ``""``: every part.
        """
        b, ch, n = mix.shape
        if isinstance(query, str):
            query = self.embed_query([query]).expand(b, -1)
        flat = mix.reshape(b * ch, n)
        spec = self.stft(flat)
        mask = self.mask(spec) if query is None else self.mask(spec, self._per_channel(query, ch))
        if wiener:
            mag = spec.abs()
            synth, rest = mask * mag, (1 - mask) * mag
            mask = synth ** 2 / (synth ** 2 + rest ** 2 + 1e-10)
        return self.istft(spec * mask, n).reshape(b, ch, n)

    def loss(self, mix: torch.Tensor, synth: torch.Tensor, query: torch.Tensor | None = None,
             return_estimate: bool = False):
        """Training loss chosen by ``config.loss``: the squared error between the masked mix STFT
        and the synth's complex STFT over the batch (phase-sensitive), or its ratio to the
        synth's energy in dB per example and channel (negative SDR); see the module doc.

        ``query`` ``(batch, QUERY_DIM)``: the part each example's ``synth`` is (rows of zeros: all
        of them); a presence gate learns apart from the mask, by binary cross-entropy on the rows
        with a query, whether that part is audible (:func:`.query.presence`): the separation loss
        scores the mask before the gate, whose level it would otherwise pull towards what suits
        the mask's leaks. ``return_estimate=True`` also returns the synth estimate made from the same
        mask (validation scores it without a second forward pass).
        """
        b, ch, n = mix.shape
        spec = self.stft(mix.reshape(b * ch, n))
        target = self.stft(synth.reshape(b * ch, n))
        query = None if query is None else self._per_channel(query, ch)
        if self.query_gate is None:
            mask, gate = (self.mask(spec) if query is None else self.mask(spec, query)), None
        else:  # the mask before the gate, and the gate's logits
            mask, gate = self._mask(spec, query)
        error = mask * spec - target
        error = error.real ** 2 + error.imag ** 2  # |error|^2 without a square root
        if self.config.loss == "psa":
            loss = error.mean()
        else:
            floor = 1e-3 * (spec.real ** 2 + spec.imag ** 2).sum((1, 2)) + 1e-10
            energy = (target.real ** 2 + target.imag ** 2).sum((1, 2))
            loss = (10 * torch.log10((error.sum((1, 2)) + floor) / (energy + floor))).mean()
        if gate is not None and (asking := asked(query, gate).bool()).any():
            heard = presence(target, spec)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(gate[asking], heard[asking])
            mask = QueryGate.scale(mask, gate, query)
        if not return_estimate:
            return loss
        return loss, self.istft(spec * mask, n).reshape(b, ch, n)
