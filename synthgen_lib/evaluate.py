"""``evaluate``: SI-SDR, SDR and log-mel distance of synth stems, per window and per track.

* **SI-SDR** (scale-invariant SDR, Le Roux et al. 2019): the estimate is projected on the
  reference; the ratio of the projection's energy to the rest, in dB. Insensitive to gain.
* **SDR** here is the plain signal-to-distortion ratio ``10 log10(|s|^2 / |s - ŝ|^2)`` (the
  "new SDR" of the MDX challenges), not BSS-eval's filtered version.

* **Log-mel distance** (LMD): the mean absolute difference, in dB, between the log-mel
  spectrograms of estimate and reference (each floored 80 dB below the reference's peak).
  It ignores phase, so it also scores estimates that are new audio rather than a filtered mix
  (SynthMatch's retrieved segments); lower is better.

SI-SDR and SDR are computed over all channels of a window (or track) together, LMD per channel
and averaged. Windows whose reference
synth is silent (below -60 dBFS RMS) have no meaningful score and are left out, and counted.
Every report carries three reference points computed by the same code: the **mix** itself as
the estimate (what doing nothing scores), the **oracle** ideal ratio mask (the best a
mix-phase mask with the SynthLSTM's STFT can do, knowing the answer), and **hpss**, the
harmonic part of librosa's harmonic-percussive separation of the mix (median filtering,
margin 1, per channel): the untrained baseline a librosa user tries first, which keeps
sustained tones and drops drum hits. **SI-SDRi** is a method's SI-SDR minus the mix's on the
same window: the improvement over doing nothing.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import TrackSource, make_windows

SILENT_RMS = 1e-3  # -60 dBFS


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SI-SDR in dB over the last axis; other axes are kept (``(..., samples)`` -> ``(...)``)."""
    ref = reference - reference.mean(-1, keepdim=True)
    est = estimate - estimate.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref ** 2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10(((target ** 2).sum(-1) + eps) / ((noise ** 2).sum(-1) + eps))


def sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Plain SDR in dB over the last axis."""
    return 10 * torch.log10(((reference ** 2).sum(-1) + eps) / (((reference - estimate) ** 2).sum(-1) + eps))


def log_mel_distance(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int, n_fft: int = 2048,
                     hop: int = 512, n_mels: int = 64, floor_db: float = 80.0) -> torch.Tensor:
    """Log-mel distance in dB over the last axis (``(..., samples)`` -> ``(...)``); see the
    module doc."""
    import torchaudio.functional as taf

    shape = reference.shape[:-1]
    window = torch.hann_window(n_fft, device=reference.device)
    fbank = taf.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney",
                                mel_scale="slaney").to(reference.device)

    def log_mel(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.reshape(-1, x.shape[-1]).float(), n_fft, hop, window=window, return_complex=True)
        return 10 * torch.log10((spec.abs() ** 2).transpose(1, 2) @ fbank + 1e-10)

    est, ref = log_mel(estimate), log_mel(reference)
    floor = ref.amax(dim=(1, 2), keepdim=True) - floor_db
    return (est.maximum(floor) - ref.maximum(floor)).abs().mean(dim=(1, 2)).reshape(shape)


def oracle_mask(mix: torch.Tensor, synth: torch.Tensor, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """The ideal ratio mask estimate: ``|S| / (|S| + |R|)`` applied to the mix STFT, mix phase."""
    window = torch.hann_window(n_fft)
    flat_mix, flat_synth = mix.reshape(-1, mix.shape[-1]).float(), synth.reshape(-1, synth.shape[-1]).float()
    spec_m = torch.stft(flat_mix, n_fft, hop, window=window, return_complex=True)
    spec_s = torch.stft(flat_synth, n_fft, hop, window=window, return_complex=True)
    spec_r = torch.stft(flat_mix - flat_synth, n_fft, hop, window=window, return_complex=True)
    mask = spec_s.abs() / (spec_s.abs() + spec_r.abs() + 1e-10)
    out = torch.istft(spec_m * mask, n_fft, hop, window=window, length=mix.shape[-1])
    return out.reshape(mix.shape)


def hpss_harmonic(mix: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The harmonic part of ``mix`` ``(..., samples)`` by librosa's harmonic-percussive source
    separation (``librosa.effects.harmonic``: its default STFT and median kernels), each
    channel on its own; shaped like ``mix``. ``margin`` 1 splits every bin between the two
    parts, so harmonic + percussive is the mix."""
    import librosa

    flat = mix.reshape(-1, mix.shape[-1]).float().cpu().numpy()
    harmonic = librosa.effects.harmonic(flat, margin=margin)
    return torch.from_numpy(harmonic).reshape(mix.shape).to(mix.device)


@dataclass
class MethodScores:
    """Scores of one method: per-window SI-SDR/SDR/log-mel distance and per-track SI-SDR (dB)."""

    window_si_sdr: list[float] = field(default_factory=list)
    window_sdr: list[float] = field(default_factory=list)
    window_lmd: list[float] = field(default_factory=list)
    track_si_sdr: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        w, d, t = self.window_si_sdr, self.window_sdr, list(self.track_si_sdr.values())
        nan = float("nan")
        return {"lmd_median": statistics.median(self.window_lmd) if self.window_lmd else nan,"si_sdr_median": statistics.median(w) if w else nan, "si_sdr_mean": statistics.fmean(w) if w else nan,
                "sdr_median": statistics.median(d) if d else nan, "sdr_mean": statistics.fmean(d) if d else nan,
                "track_si_sdr_median": statistics.median(t) if t else nan, "windows": len(w), "tracks": len(t)}


@dataclass
class EvalReport:
    """Scores per method (the models' names, then ``mix``, ``oracle``, ``hpss``) on the evaluated
    tracks."""

    methods: dict[str, MethodScores]
    silent_windows: int = 0
    windows: list[tuple[str, float]] = field(default_factory=list)  # (track, start s) of each scored window
    note: str = ""  # which tracks were scored, when not the split computed from the seed

    def format_worst(self, method: str, count: int) -> str:
        """The ``count`` windows where ``method`` scores lowest, with every method's SI-SDR there
        (where a model fails, and whether the mix itself was already hard)."""
        scores = self.methods[method].window_si_sdr
        order = sorted(range(len(scores)), key=scores.__getitem__)[:count]
        lines = [f"worst {len(order)} windows of {method} (SI-SDR, dB)",
                 f"{'track':<28}{'start s':>8}" + "".join(f"{k[:14]:>15}" for k in self.methods)]
        for i in order:
            track, start = self.windows[i]
            lines.append(f"{track:<28}{start:>8.1f}"
                         + "".join(f"{m.window_si_sdr[i]:>15.2f}" for m in self.methods.values()))
        return "\n".join(lines)

    def improvement(self, method: str) -> tuple[float, float]:
        """Median and mean SI-SDR improvement of ``method`` over the mix itself, window by
        window (dB); NaN without the mix's scores."""
        mix, own = self.methods.get("mix"), self.methods[method].window_si_sdr
        if mix is None or len(mix.window_si_sdr) != len(own) or not own:
            return float("nan"), float("nan")
        gains = [a - b for a, b in zip(own, mix.window_si_sdr)]
        return statistics.median(gains), statistics.fmean(gains)

    def format(self) -> str:
        lines = [f"{'method':<22}{'SI-SDR med':>11}{'mean':>8}{'SI-SDRi med':>12}{'mean':>8}{'SDR med':>9}"
                 f"{'mean':>8}{'track med':>10}{'LMD med':>9}{'windows':>9}"]
        for name, scores in self.methods.items():
            s = scores.summary()
            gain_median, gain_mean = self.improvement(name)
            lines.append(f"{name:<22}{s['si_sdr_median']:>11.2f}{s['si_sdr_mean']:>8.2f}{gain_median:>12.2f}"
                         f"{gain_mean:>8.2f}{s['sdr_median']:>9.2f}{s['sdr_mean']:>8.2f}"
                         f"{s['track_si_sdr_median']:>10.2f}{s['lmd_median']:>9.2f}{s['windows']:>9}")
        if self.silent_windows:
            lines.append(f"({self.silent_windows} windows with a silent synth reference were not scored)")
        if self.note:
            lines.append(f"({self.note})")
        return "\n".join(lines)


def _named(models: dict[str, nn.Module | str | Path] | nn.Module | str | Path) -> dict:
    """``models`` as ``{name: model}``: one model is named by its path or its family."""
    if isinstance(models, dict):
        return models
    return {str(models) if not isinstance(models, nn.Module) else models.family: models}


def _loaded(models: dict) -> dict[str, nn.Module]:
    """``models`` with every checkpoint path or bundled name loaded."""
    from .models import load_model

    return {k: (m if isinstance(m, nn.Module) else load_model(m)) for k, m in models.items()}


def evaluate(models: dict[str, nn.Module | str | Path] | nn.Module | str | Path, data: TrackSource, *,
             split: str = "valid", window: float = 10.0, hop: float = 5.0, valid_fraction: float = 0.1,
             seed: int = 0, references: bool = True, max_tracks: int | None = None,
             progress: bool = False, **separate_kwargs) -> EvalReport:
    """Score models on the ``split`` tracks of ``data`` (the same split training used).

    Each track is separated whole (:func:`synthgen_lib.separate.separate`), then scored per
    window (``window``/``hop``) and over the whole track.

    Args:
        models: one model (or checkpoint path / bundled name), or ``{name: model}``.
        data: the data source.
        split: ``valid`` (default), ``train``, ``test``, or ``all``.
        references: also score the mix itself, the oracle ratio mask and HPSS's harmonic part.
        max_tracks: evaluate at most this many tracks (sorted by name).
    """
    from .separate import separate

    models = _named(models)
    held_out = _recorded_validation(models) if split == "valid" else None
    models = _loaded(models)
    rate = next(iter(models.values())).config.sample_rate
    ws = make_windows(data.tracks(), window, hop, valid_fraction, seed)
    names = sorted(n for n, s in ws.splits.items() if split == "all" or s == split)
    note = ""
    if held_out:
        present = sorted(set(held_out) & set(ws.splits))
        if present:
            names = present
            note = f"the {len(present)} validation tracks the checkpoint records, not a split from --seed"
        else:
            note = (f"none of the {len(held_out)} validation tracks the checkpoint records are in this dataset; "
                    "scored the split from --seed and --valid-fraction")
    names = names[:max_tracks]
    methods = {k: MethodScores() for k in models}
    if references:
        methods.update(mix=MethodScores(), oracle=MethodScores(), hpss=MethodScores())
    silent, scored = 0, []
    for name in tqdm(names, desc="evaluating", disable=not progress):
        audio = data.load(name, rate, 2)
        estimates = {k: separate(audio.mix, m, rate, **separate_kwargs).synth for k, m in models.items()}
        if references:
            estimates.update(mix=audio.mix, oracle=oracle_mask(audio.mix, audio.synth), hpss=hpss_harmonic(audio.mix))
        for w in (w for w in ws.windows if w.track == name):
            a, b = int(w.start * rate), int((w.start + w.length) * rate)
            ref = audio.synth[:, a:b]
            if ref.pow(2).mean().sqrt() < SILENT_RMS:
                silent += 1
                continue
            scored.append((name, w.start))
            for k, est in estimates.items():
                methods[k].window_si_sdr.append(float(si_sdr(est[:, a:b].flatten(), ref.flatten())))
                methods[k].window_sdr.append(float(sdr(est[:, a:b].flatten(), ref.flatten())))
                methods[k].window_lmd.append(float(log_mel_distance(est[:, a:b], ref, rate).mean()))
        if audio.synth.pow(2).mean().sqrt() >= SILENT_RMS:
            for k, est in estimates.items():
                methods[k].track_si_sdr[name] = float(si_sdr(est.flatten(), audio.synth.flatten()))
    return EvalReport(methods=methods, silent_windows=silent, windows=scored, note=note)


QUERY_WORDINGS = {"described": "the part's whole description", "short": "its first clause, e.g. 'warm FM pad'"}
"""How :func:`query_accuracy` words each query."""


@dataclass
class QueryScores:
    """One model's answers to queries, per window: ``accuracy`` (dB) per wording, SI-SDR of the
    estimate against the described part minus its mean SI-SDR against the track's other parts;
    ``absent`` (dB), the level of the answer to a part the track lacks relative to the mix, and
    ``present`` (dB), that of the answer to a described part (the part that plays): an answer
    near silence for an absent part is one well below ``present``, not only below the mix."""

    accuracy: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in QUERY_WORDINGS})
    absent: list[float] = field(default_factory=list)
    present: list[float] = field(default_factory=list)


@dataclass
class QueryReport:
    """:func:`query_accuracy`'s scores per model, and how many tracks they come from."""

    models: dict[str, QueryScores]
    tracks: int

    def format(self) -> str:
        lines = [f"query accuracy on {self.tracks} tracks with two or more synth parts (dB: SI-SDR to the part asked "
                 "for minus SI-SDR to the other parts; absent: answer to a part the track lacks, "
                 "present: to a described part, both re the mix)",
                 f"{'model':<22}{'query':<11}{'mean':>8}{'median':>8}{'windows':>9}{'absent med':>12}{'present med':>13}"]
        for name, scores in self.models.items():
            for wording, values in scores.accuracy.items():
                levels = f"{_median(scores.absent):>12.1f}{_median(scores.present):>13.1f}" if wording == "described" else ""
                lines.append(f"{name[:21]:<22}{wording:<11}{_mean(values):>8.2f}{_median(values):>8.2f}{len(values):>9}"
                             + levels)
        return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@torch.no_grad()
def query_accuracy(models: dict[str, nn.Module | str | Path] | nn.Module | str | Path, data: TrackSource, *,
                   split: str = "valid", window: float = 10.0, hop: float = 5.0, valid_fraction: float = 0.1,
                   seed: int = 0, max_tracks: int | None = None, tracks: list[str] | None = None,
                   role_check: bool = True, progress: bool = False) -> QueryReport:
    """How well models trained with text queries keep the part a description asks for.

    On each ``split`` track of ``data`` with two or more synth parts (:attr:`TrackInfo.parts`),
    every part is asked for in each of :data:`QUERY_WORDINGS`, and the answer is scored per
    window where every part is audible: SI-SDR against the part asked for minus the mean SI-SDR
    against the other parts. Each track is also asked for a part it lacks (a description, from
    the evaluated tracks, naming only roles none of its parts plays): the answer's level relative
    to the mix, where a good model answers near silence. ``tracks`` names the tracks to ask
    about instead of a split (e.g. those a checkpoint's training held out). ``role_check``: the
    answers are :func:`~synthgen_lib.separate.separate`'s, by default after its role check.
    """
    from .data.queries import QueryPicker
    from .errors import SynthGenError
    from .models import family_title
    from .separate import separate

    models = _loaded(_named(models))
    for name, model in models.items():
        if "query" not in getattr(model, "options", {}):
            raise SynthGenError(f"{name}: this {family_title(model)} was trained without text queries — query "
                                "accuracy needs a model trained with --queries")
    rate = next(iter(models.values())).config.sample_rate
    ws = make_windows(data.tracks(), window, hop, valid_fraction, seed)
    chosen = set(tracks) if tracks is not None else {n for n, s in ws.splits.items() if split == "all" or s == split}
    infos = [data.info(n) for n in sorted(chosen & set(ws.splits))]
    picker = QueryPicker(infos)
    infos = [t for t in infos if len(t.parts) >= 2][:max_tracks]
    if not infos:
        raise SynthGenError(f"no {split} track of this dataset has two or more synth parts (synth/NAME/PART files) — "
                            "prepare one from a source that makes them (synthetic, sampled)")
    report = QueryReport({k: QueryScores() for k in models}, len(infos))
    for info in tqdm(infos, desc="asking", disable=not progress):
        audio = data.load(info.name, rate, 2)
        parts = [audio.parts[p.name] for p in info.parts]
        absent = picker.absent(info)
        for name, model in models.items():
            scores = report.models[name]
            for k, part in enumerate(info.parts):
                for wording in QUERY_WORDINGS:
                    text = part.description if wording == "described" else part.description.split(",")[0]
                    estimate = separate(audio.mix, model, rate, query=text, role_check=role_check).synth
                    track_windows = [w for w in ws.windows if w.track == info.name]
                    scores.accuracy[wording] += part_accuracy(estimate, parts, k, track_windows, rate)
                    if wording == "described":
                        scores.present.append(_level(estimate, audio.mix))
            if absent:
                estimate = separate(audio.mix, model, rate, query=absent[0], role_check=role_check).synth
                scores.absent.append(_level(estimate, audio.mix))
    return report


def _level(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The energy of ``x`` relative to ``reference``'s, in dB."""
    level = x.pow(2).sum() / reference.pow(2).sum().clamp_min(1e-12)
    return float(10 * torch.log10(level.clamp_min(1e-12)))


def part_accuracy(estimate: torch.Tensor, parts: list[torch.Tensor], k: int, windows: list, rate: int) -> list[float]:
    """Query accuracy (dB) of ``estimate`` ``(channels, samples)``, an answer asking for
    ``parts[k]``, in each of ``windows`` where every part is audible: SI-SDR against ``parts[k]``
    minus the mean SI-SDR against the other parts."""
    accuracy = []
    for w in windows:
        a, b = int(w.start * rate), int((w.start + w.length) * rate)
        refs = [p[:, a:b].flatten() for p in parts]
        if min(float(r.pow(2).mean().sqrt()) for r in refs) < SILENT_RMS:
            continue
        est = estimate[:, a:b].flatten()
        others = [float(si_sdr(est, r)) for j, r in enumerate(refs) if j != k]
        accuracy.append(float(si_sdr(est, refs[k])) - statistics.fmean(others))
    return accuracy


def evaluate_run(checkpoint: str | Path, data: str | Path) -> str:
    """The report that fits a trained checkpoint, as text (what the Train notebook prints).

    A separator or matcher: :func:`evaluate` on the validation tracks of the folder dataset
    ``data`` (those its training held out), beside the references and the family's own
    baselines (SynthMatch: random segments). A generator: :func:`conditioning_report` on the
    validation windows of the token folder ``data``.
    """
    from .data import FolderSource
    from .models import load_model

    model = load_model(checkpoint)
    if getattr(model, "task", None) == "generator":
        from .encode import Codes

        return conditioning_report(model, Codes(data).dataset("valid")).format()
    name = Path(checkpoint).parent.name if Path(checkpoint).stem in ("best", "last") else Path(checkpoint).stem
    models = {name: checkpoint, **getattr(model, "baselines", dict)()}
    source = FolderSource(data)
    text = evaluate(models, source).format()
    if "query" not in getattr(model, "options", {}):
        return text
    held_out = _recorded_validation({name: checkpoint})
    if not any(len(source.info(t).parts) >= 2 for t in (held_out or [])):
        return text + "\n\n(no validation track has two or more synth parts: query accuracy not measured)"
    return text + "\n\n" + query_accuracy({name: model}, source, tracks=held_out).format()


def _recorded_validation(models: dict) -> list[str] | None:
    """The validation tracks the checkpoints among ``models`` record (training held them out),
    or ``None`` when none records any. Checkpoints validated on different tracks cannot share
    one table: refused in one line."""
    from .errors import SynthGenError
    from .models import load_checkpoint

    recorded = {}
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            tracks = load_checkpoint(model).get("train", {}).get("valid_tracks")
            if tracks:
                recorded[name] = sorted(tracks)
    if len({tuple(t) for t in recorded.values()}) > 1:
        raise SynthGenError(f"{', '.join(recorded)}: these checkpoints were validated on different tracks — evaluate "
                            "them one at a time (or with --split all)")
    return next(iter(recorded.values()), None)


@dataclass
class ConditioningReport:
    """Validation cross-entropy (nats per token) with the true mix, another window's mix, and
    no mix at all: how much the model listens to the mix."""

    true_mix: float
    shuffled_mix: float
    no_mix: float
    windows: int

    def format(self) -> str:
        return (f"validation cross-entropy over {self.windows} windows (nats per token): true mix {self.true_mix:.3f}, "
                f"shuffled mix {self.shuffled_mix:.3f}, no mix {self.no_mix:.3f}")


@torch.no_grad()
def conditioning_report(model: nn.Module | str | Path, dataset, batch_size: int = 16) -> ConditioningReport:
    """Score ``dataset`` (a :class:`~synthgen_lib.encode.CodesDataset`) three ways. For the
    shuffled score window ``i`` gets window ``i - 1``'s mix (with a single window: its own
    mix rotated by half its length, so every frame meets another moment of the song)."""
    from .models import audiocraft_compat  # noqa: F401  (before audiocraft: xformers may be absent)
    from audiocraft.modules.conditioners import nullify_wav

    from .errors import SynthGenError
    from .models import load_model

    net = model if isinstance(model, nn.Module) else load_model(model, family="synthgen")
    net.eval()
    n = len(dataset)
    if n == 0:
        raise SynthGenError("conditioning_report needs at least one window")
    items = [dataset[i] for i in range(n)]
    synth, mix, chroma = (torch.stack([x[j] for x in items]).to(net._device) for j in range(3))
    text = [x[3] for x in items]
    if n == 1:
        other_mix, other_chroma = mix.roll(mix.shape[-1] // 2, -1), chroma.roll(chroma.shape[1] // 2, 1)
    else:
        other_mix, other_chroma = mix.roll(1, 0), chroma.roll(1, 0)
    totals = {"true": 0.0, "shuffled": 0.0, "none": 0.0}
    for i in range(0, n, batch_size):
        s = slice(i, i + batch_size)
        b = len(text[s])
        totals["true"] += net.loss(synth[s], mix[s], chroma[s], text[s]).item() * b
        totals["shuffled"] += net.loss(synth[s], other_mix[s], other_chroma[s], text[s]).item() * b
        conditions = net.conditions(mix[s], chroma[s] if chroma.numel() else None, text[s])
        for c in conditions:
            c.wav = {k: nullify_wav(v) for k, v in c.wav.items()}
        totals["none"] += net.token_loss(synth[s], conditions).item() * b
    return ConditioningReport(totals["true"] / n, totals["shuffled"] / n, totals["none"] / n, n)
