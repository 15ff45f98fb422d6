"""RoleCheck: does an answer sound like the part its description asks for?

A separator with text queries learns *which* part a description names far better than *whether*
that part plays: asked for a pad the mix lacks, it answers a blend of whatever else sounds
there, only a little quieter than a real part (docs/experiments.md). RoleCheck judges the answer
itself: a small convolutional network over the log-mel spectrogram of 4-second stretches of a
part, trained on isolated synth parts with a little of their mix's other instruments let
through (as a separator leaks them), says for each synth role (:data:`ROLES`) how likely the
stretch is that role. :meth:`RoleCheck.gain` turns the probability of the role a description
names, averaged over about 10 seconds, into a gain: full level from ``threshold`` up,
falling as ``(p / threshold) ** power`` below, so an answer that does not sound like the part
asked for fades towards silence where it does not. A description that names no role ("bright
detuned saw") is never checked.

The bundled check (:data:`BUNDLED_CHECK`) is trained by :func:`train_role_check` on the bundled
query model's training data (``make demo-query-model``); ``separate(..., role_check=False)`` and
``synthgen separate --no-role-check`` leave answers as the separator gave them.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.queries import ROLE_WORDS, roles_named

ROLES = tuple(dict.fromkeys(ROLE_WORDS.values()))
"""The synth roles RoleCheck tells apart (those :func:`roles_named` finds in descriptions):
lead, pad, arp, pluck, chords, bass."""

BUNDLED_CHECK = Path(__file__).resolve().parents[1] / "assets" / "models" / "rolecheck.pt"


def _labels(text: str) -> torch.Tensor:
    """1 for each role ``text`` names and 0 for the others, in :data:`ROLES` order."""
    named = roles_named(text)
    return torch.tensor([float(r in named) for r in ROLES])


@dataclass
class RoleCheckConfig:
    """Settings of a :class:`RoleCheck`, saved in its checkpoint.

    Args:
        sample_rate: rate the network hears (answers are resampled to it, as mono).
        n_fft, hop_length, n_mels: its log-mel spectrogram.
        widths: output channels of the convolution blocks (each halves time and frequency).
        crop: seconds per judgement.
        hop: seconds between judgements.
        context: judgements are averaged over this many seconds around each.
        threshold: probability from which an answer keeps its full level.
        power: below ``threshold`` the gain is ``(p / threshold) ** power``.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 64
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 96])
    crop: float = 4.0
    hop: float = 2.0
    context: float = 10.0
    threshold: float = 0.5
    power: float = 2.0


class RoleCheck(nn.Module):
    """Probabilities of the synth roles of short mono stretches of audio."""

    def __init__(self, config: RoleCheckConfig | None = None):
        super().__init__()
        import torchaudio

        self.config = c = config or RoleCheckConfig()
        self.mel = torchaudio.transforms.MelSpectrogram(c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                                        n_mels=c.n_mels)
        layers, width = [], 1
        for out in c.widths:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * width, len(ROLES))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Role logits ``(batch, len(ROLES))`` of ``wav`` ``(batch, samples)`` at the config's rate;
        the level of each stretch does not matter (it is normalised first)."""
        wav = wav / wav.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-5) * 0.1
        h = self.body(torch.log(self.mel(wav) + 1e-6).unsqueeze(1)).mean(2)  # (batch, width, frames)
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], -1))

    @torch.no_grad()
    def gain(self, answer: torch.Tensor, sample_rate: int, text: str) -> torch.Tensor | None:
        """Gain ``(samples,)`` for ``answer`` ``(channels, samples)`` or ``(samples,)``, an answer
        to the description ``text``; ``None`` when ``text`` names no role (nothing to check)."""
        from .audio import resample

        asked = _labels(text).bool()
        if not asked.any():
            return None
        c = self.config
        mono = answer.float().reshape(-1, answer.shape[-1]).mean(0)
        x = resample(mono[None], sample_rate, c.sample_rate)[0].cpu()
        crop, hop = int(c.crop * c.sample_rate), int(c.hop * c.sample_rate)
        x = nn.functional.pad(x, (0, max(0, crop - x.shape[-1])))
        starts = list(range(0, x.shape[-1] - crop + 1, hop))
        if starts[-1] + crop < x.shape[-1]:  # the end gets a judgement of its own
            starts.append(x.shape[-1] - crop)
        was = self.training
        self.eval()
        probs = torch.cat([torch.sigmoid(self(torch.stack([x[s:s + crop] for s in starts[i:i + 16]])))
                           for i in range(0, len(starts), 16)])
        self.train(was)
        p = probs[:, asked].amax(1).numpy()
        centres = (np.array(starts) + crop / 2) / c.sample_rate
        near = np.abs(centres[:, None] - centres[None]) <= c.context / 2
        p = (near * p[None]).sum(1) / near.sum(1)
        g = np.minimum(1.0, p / c.threshold) ** c.power
        times = np.arange(answer.shape[-1]) / sample_rate
        return torch.from_numpy(np.interp(times, centres, g)).float().to(answer.device)


def check_answer(answer: torch.Tensor, sample_rate: int, text: str | None,
                 check: RoleCheck | None = None) -> torch.Tensor:
    """``answer`` scaled by ``check``'s gain for ``text`` (the bundled check by default; as it
    is when there is no description, it names no role, or no check is installed)."""
    check = load_role_check() if check is None else check
    gain = check.gain(answer, sample_rate, text) if check is not None and text else None
    return answer if gain is None else answer * gain


@lru_cache(maxsize=4)
def load_role_check(path: str | Path = BUNDLED_CHECK) -> RoleCheck | None:
    """The RoleCheck saved at ``path`` (``None`` when there is none, e.g. a checkout without it)."""
    from .models import CheckpointError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = RoleCheck(RoleCheckConfig(**payload["config"]))
        model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one line
        raise CheckpointError(f"{path}: not a RoleCheck checkpoint ({type(exc).__name__}: {exc})") from None
    return model.eval()


def save_role_check(model: RoleCheck, path: str | Path, half: bool = False) -> Path:
    """Write ``model`` with its config to ``path`` atomically (``half``: weights in float16)."""
    from .fileio import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(model.config), "state_dict": state}, tmp)
    return Path(path)


def _parts(source, sample_rate: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(part, mix, labels)`` (mono, at ``sample_rate``) of every synth part of ``source`` whose
    description names a role."""
    items = []
    for info in source.tracks():
        audio = None
        named = [(p.name, p.description) for p in info.parts] or [("", info.part_descriptions()[0])]
        for name, text in named:
            labels = _labels(text)
            if not labels.any():
                continue
            audio = audio or source.load(info.name, sample_rate, 1)
            part = audio.parts[name] if name else audio.synth
            items.append((part[0], audio.mix[0], labels))
    return items


def _answers(source, separator, sample_rate: int, rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(answer, labels, weights)`` (mono, at ``sample_rate``): ``separator``'s answers, on each
    track of ``source``, to each part's description (labelled with that part's roles) and to one
    description of a part the track lacks (labelled "not that role"; its other roles unknown,
    weight 0)."""
    from .audio import resample
    from .data.queries import QueryPicker
    from .separate import separate
    from .models import load_model

    model = load_model(separator)
    rate, infos = model.config.sample_rate, list(source.tracks())
    picker, answers = QueryPicker(infos), []
    for info in infos:
        asks = [(text, True) for text in info.part_descriptions() if roles_named(text)]
        absent = picker.absent(info)  # descriptions that name roles, none of this track's
        if not asks:
            continue
        if absent:
            asks.append((absent[rng.randrange(len(absent))], False))
        mix = source.load(info.name, rate, 2).mix
        for text, present in asks:
            answer = separate(mix, model, rate, query=text, role_check=False).synth.mean(0)
            named = _labels(text)
            labels, weights = (named, torch.ones_like(named)) if present else (torch.zeros_like(named), named)
            answers.append((resample(answer[None], rate, sample_rate)[0], labels, weights))
    return answers


def _crops(items, size: int, crop: int, rng: random.Random, make, what: str) -> list[torch.Tensor]:
    """``size`` examples ``make(item, start)`` of random ``items`` (whose first entry is audio) at
    random starts, stacked entry by entry; ``make`` returns ``None`` for a crop too quiet to use,
    which is drawn again (up to 20 tries per example)."""
    made = []
    for _ in range(size * 20):
        item = items[rng.randrange(len(items))]
        example = make(item, rng.randrange(max(1, item[0].shape[-1] - crop)))
        if example is not None:
            made.append(example)
            if len(made) == size:
                break
    if not made:
        from .errors import SynthGenError
        raise SynthGenError(f"{what} are silent — nothing to learn roles from")
    return [torch.stack(entries) for entries in zip(*made)]


def _pad(x: torch.Tensor, crop: int) -> torch.Tensor:
    return nn.functional.pad(x, (0, crop - x.shape[-1]))


def _batch(items, size: int, crop: int, rng: random.Random, others: float) -> list[torch.Tensor]:
    """``[crops, labels]``: ``size`` random crops of parts, each with the rest of its mix let
    through 3 to 30 dB below it, and their role labels; a share ``others`` of them are the rest of
    the mix instead (the instruments that are not synth: piano, organ, strings, drums), the part
    let through 10 to 30 dB below, labelled no role."""
    def make(item, s):
        part, mix, labels = item
        p, rest = part[s:s + crop], mix[s:s + crop] - part[s:s + crop]
        if rng.random() < others:
            (p, rest), labels, low, high = (rest, p), torch.zeros_like(labels), -30, -10
        else:
            low, high = -30, -3
        level = float(p.pow(2).mean().sqrt())
        if level < 1e-3:  # the part (or the rest) is silent here
            return None
        leak = 10 ** (rng.uniform(low, high) / 20) * level / max(float(rest.pow(2).mean().sqrt()), 1e-5)
        return _pad(p + leak * rest, crop), labels

    return _crops(items, size, crop, rng, make, "the synth parts of this dataset")


def _answer_batch(answers, size: int, crop: int, rng: random.Random) -> list[torch.Tensor]:
    """``[crops, labels, weights]``: ``size`` random crops of separator answers."""
    def make(item, s):
        answer, labels, weights = item
        x = answer[s:s + crop]
        return None if float(x.pow(2).mean().sqrt()) < 1e-6 else (_pad(x, crop), labels, weights)

    return _crops(answers, size, crop, rng, make, "the separator's answers")


def train_role_check(data, output: str | Path, steps: int = 2000, batch_size: int = 32, lr: float = 1e-3,
                     others: float = 0.3, separator: str | Path | None = None, answers: float = 0.5,
                     seed: int = 0, config: RoleCheckConfig | None = None, progress: bool = True) -> Path:
    """Train a :class:`RoleCheck` on the synth parts of ``data`` (a track source or a dataset
    folder whose parts have descriptions) and save it to ``output``.

    Each step is ``batch_size`` crops of parts whose description names a role, with the rest of
    their mix let through 3 to 30 dB below them, and (a share ``others``) of the rest of a mix
    with no role, scored by binary cross-entropy per role; the rate falls from ``lr`` to 0 on a
    cosine. With ``separator`` (a model with text queries), a share ``answers`` of each batch
    are crops of its answers to the parts' descriptions and to descriptions of parts the tracks
    lack: what the check will hear, leaks and all.
    """
    from tqdm.auto import tqdm

    from .data import open_source
    from .errors import SynthGenError

    source = data if hasattr(data, "tracks") else open_source("folder", data)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = RoleCheck(config)
    items = _parts(source, model.config.sample_rate)
    if not items:
        raise SynthGenError(f"{data}: no synth part has a description that names a role ({', '.join(ROLES)})")
    crop = int(model.config.crop * model.config.sample_rate)
    heard = _answers(source, separator, model.config.sample_rate, rng) if separator else []
    n_answers = int(round(batch_size * answers)) if heard else 0
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    model.train()
    bar = tqdm(range(steps), desc="role check", disable=not progress)
    for _ in bar:
        x, y = _batch(items, batch_size - n_answers, crop, rng, others)
        w = torch.ones_like(y)
        if n_answers:
            xa, ya, wa = _answer_batch(heard, n_answers, crop, rng)
            x, y, w = torch.cat([x, xa]), torch.cat([y, ya]), torch.cat([w, wa])
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y, weight=w, reduction="sum") / w.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return save_role_check(model.eval(), output, half=True)


if __name__ == "__main__":  # the bundled check's recipe: python -m synthgen_lib.roles DATA OUTPUT [STEPS [SEPARATOR]]
    import sys

    train_role_check(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2000,
                     separator=sys.argv[4] if len(sys.argv) > 4 else None)
