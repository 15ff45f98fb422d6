"""Text queries for training: which part of a track's synth a description asks for.

A training example with a query asks for one synth part by its description (the target is that
part alone), or by a description of a part the track does not have (the target is silence). A
description "names no part of the track" when the synth roles it names (lead, pad, arp, pluck,
chords, bass) are all roles no part of the track plays; descriptions that name no role are never
used that way, since nothing says they do not match. Users type a few words ("warm pad"), so a
query is a shortened variant of the full description: its role words always, each other word of
its first clause and each later clause with some chance.
"""
from __future__ import annotations

import re

import torch

from .tracks import TrackInfo

ROLE_WORDS = {"lead": "lead", "leads": "lead", "pad": "pad", "pads": "pad", "arp": "arp", "arps": "arp",
              "arpeggio": "arp", "arpeggiated": "arp", "pluck": "pluck", "plucks": "pluck", "chords": "chords",
              "chord": "chords", "stab": "chords", "stabs": "chords", "bass": "bass"}
"""Words that name a synth part's role, and the role each names."""


def roles_named(text: str) -> frozenset[str]:
    """The synth roles a description names (``"warm saw pad"`` -> ``{"pad"}``)."""
    return frozenset(ROLE_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in ROLE_WORDS)


def query_variant(text: str, generator: torch.Generator, keep_word: float = 0.6, keep_clause: float = 0.4) -> str:
    """A shorter way of asking for the part ``text`` describes: the first clause's role words,
    each of its other words with chance ``keep_word``, each later clause with ``keep_clause``."""
    clauses = [c.strip() for c in text.split(",") if c.strip()]
    if not clauses:
        return text
    words = [w for w in clauses[0].split()
             if w.lower() in ROLE_WORDS or float(torch.rand((), generator=generator)) < keep_word]
    kept = [" ".join(words or clauses[0].split())]
    kept += [c for c in clauses[1:] if float(torch.rand((), generator=generator)) < keep_clause]
    return ", ".join(kept)


class QueryPicker:
    """Draws the query of a training example from the part descriptions of ``tracks``.

    Args:
        tracks: the tracks examples come from; their part descriptions are also the pool that
            descriptions of absent parts are drawn from.
        negatives: chance that a query names a part the track does not have.
    """

    def __init__(self, tracks: list[TrackInfo], negatives: float = 0.25):
        self.negatives = negatives
        pool = sorted({d for t in tracks for d in t.part_descriptions()})
        self._pool = [(d, roles_named(d)) for d in pool]
        self._absent: dict[frozenset, list[str]] = {}

    def absent(self, info: TrackInfo) -> list[str]:
        """Descriptions of the pool naming only roles no part of ``info`` plays (none when the
        track's own parts name no role)."""
        own = frozenset().union(*(roles_named(d) for d in info.part_descriptions()))
        if not own:
            return []
        if own not in self._absent:
            self._absent[own] = [d for d, roles in self._pool if roles and not roles & own]
        return self._absent[own]

    def pick(self, info: TrackInfo, generator: torch.Generator, vary: bool = True) -> tuple[str, str | None]:
        """``(query, part)``: the part's name (``""`` for a one-part track's whole synth), or
        ``None`` when the query names a part the track does not have (its target is silence)."""
        absent = self.absent(info)
        if absent and float(torch.rand((), generator=generator)) < self.negatives:
            text, part = absent[int(torch.randint(len(absent), (), generator=generator))], None
        else:
            descriptions = info.part_descriptions()
            k = int(torch.randint(len(descriptions), (), generator=generator))
            text, part = descriptions[k], info.parts[k].name if info.parts else ""
        return (query_variant(text, generator) if vary else text), part
