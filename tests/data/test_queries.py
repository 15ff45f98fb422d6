"""Which part a training query asks for, and how it is worded."""
from __future__ import annotations

import torch

from synthgen_lib.data import PartInfo, TrackInfo
from synthgen_lib.data.queries import QueryPicker, query_variant, roles_named

PAD_AND_LEAD = TrackInfo("a", 20.0, "warm saw pad, low register; plus bright square lead; A minor, 96 bpm",
                         parts=(PartInfo("part1", "warm saw pad, low register, slow attack"),
                                PartInfo("part2", "bright square lead, high register, fast attack")))
ARP = TrackInfo("b", 20.0, "dark FM arp, mid register, fast attack; C major, 120 bpm, with piano")
CHORDS = TrackInfo("c", 20.0, "warm pulse chords, mid register; C major, 100 bpm")
NO_ROLE = TrackInfo("d", 20.0, "synthesizer")


def test_roles_are_read_from_role_words_only():
    assert roles_named("warm detuned saw pad, with chorus") == {"pad"}
    assert roles_named("Lead 8 (bass + lead)") == {"lead", "bass"}
    assert roles_named("arpeggiated plucks") == {"arp", "pluck"}
    assert roles_named("padded bright leader") == frozenset()  # whole words, not pieces of words


def test_a_one_part_track_is_asked_for_by_its_description_without_key_tempo_and_band():
    assert ARP.part_descriptions() == ["dark FM arp, mid register, fast attack"]
    assert PAD_AND_LEAD.part_descriptions() == [p.description for p in PAD_AND_LEAD.parts]


def test_absent_parts_name_only_roles_the_track_does_not_play():
    picker = QueryPicker([PAD_AND_LEAD, ARP, CHORDS, NO_ROLE])
    assert picker.absent(PAD_AND_LEAD) == ["dark FM arp, mid register, fast attack", "warm pulse chords, mid register"]
    assert picker.absent(ARP) == ["bright square lead, high register, fast attack", "warm pulse chords, mid register",
                                  "warm saw pad, low register, slow attack"]
    assert picker.absent(NO_ROLE) == []  # nothing says which parts it lacks


def test_picks_ask_for_each_part_and_for_absent_ones_at_the_set_rate():
    picker = QueryPicker([PAD_AND_LEAD, ARP, CHORDS], negatives=0.3)
    g = torch.Generator().manual_seed(0)
    picks = [picker.pick(PAD_AND_LEAD, g, vary=False) for _ in range(2000)]
    parts = [part for _, part in picks]
    assert abs(parts.count(None) / 2000 - 0.3) < 0.04
    assert abs(parts.count("part1") - parts.count("part2")) < 140
    for text, part in picks:
        if part is None:
            assert not roles_named(text) & {"pad", "lead"}
        else:
            assert text == PAD_AND_LEAD.parts[int(part[-1]) - 1].description
    assert {picker.pick(ARP, g, vary=False)[1] for _ in range(50)} == {"", None}  # "": the whole synth


def test_query_variants_keep_the_role_and_drop_other_words():
    g = torch.Generator().manual_seed(1)
    text = "bright detuned saw lead, high register, medium attack, with vibrato and chorus"
    clauses = [c.strip() for c in text.split(",")]
    variants = [query_variant(text, g) for _ in range(300)]
    for v in variants:
        head, *rest = [c.strip() for c in v.split(",")]
        assert "lead" in head.split() and set(head.split()) <= set(clauses[0].split())
        assert all(c in clauses[1:] for c in rest)
    assert len(set(variants)) > 30
    assert sum(v.split(",")[0] != clauses[0] for v in variants) > 200  # most drop words of the first clause
    assert sum("high register" in v for v in variants) in range(90, 150)  # a later clause 40 % of the time
