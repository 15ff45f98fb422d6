"""describe.py: the training descriptions closest to what the user typed (offline)."""
from __future__ import annotations

import pytest

from synthgen_lib.describe import embed, lexical_similarity, match_description

KNOWN = ["bright detuned saw lead", "warm analog pad with slow attack", "plucky square arpeggio",
         "dark FM bass", "glassy bell keys", "soft string ensemble", "noisy riser effect",
         "acid squelchy 303 bassline"]
PARAPHRASES = {  # what a user might type -> the training description it was written from
    "a shiny supersaw lead line": "bright detuned saw lead",
    "mellow pad that fades in slowly": "warm analog pad with slow attack",
    "fast arpeggiated square plucks": "plucky square arpeggio",
    "deep growling frequency modulation bass": "dark FM bass",
    "chiming bell-like keyboard": "glassy bell keys",
    "gentle orchestral strings": "soft string ensemble",
    "white noise sweep build-up": "noisy riser effect",
    "resonant acid bass line": "acid squelchy 303 bassline",
}


def test_the_packaged_sentence_model_loads_offline():
    vectors = embed(["bright saw lead", "bright saw lead", "a kick drum"])
    assert vectors.shape == (3, 384)
    assert vectors.norm(dim=-1).allclose(vectors.new_ones(3), atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.999 > float(vectors[0] @ vectors[2])


@pytest.mark.parametrize("typed, source", PARAPHRASES.items())
def test_a_paraphrase_finds_its_source_description_first(typed, source):
    matches = match_description(typed, KNOWN * 2, top=3)  # duplicates are scored once
    assert matches[0].description == source, matches
    assert len({m.description for m in matches}) == 3
    assert matches[0].score >= matches[1].score >= matches[2].score


def test_the_lexical_fallback_ranks_reworded_descriptions():
    assert lexical_similarity("saw lead, bright detuned", "bright detuned saw lead") > 0.9
    assert match_description("detuned brite saw leed", KNOWN, method="lexical")[0].description == \
        "bright detuned saw lead"
    assert match_description("", KNOWN) == [] and match_description("pad", []) == []
