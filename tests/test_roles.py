"""RoleCheck: what it learns, the gain it gives an answer, and the bundled check on the example."""
from __future__ import annotations

import pytest
import torch

from synthgen_lib.data.queries import roles_named
from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.models import CheckpointError
from synthgen_lib.roles import (BUNDLED_CHECK, ROLES, RoleCheck, RoleCheckConfig, check_answer,
                                       load_role_check, save_role_check, train_role_check)

TINY = RoleCheckConfig(widths=[8, 16], crop=2.0, hop=1.0, context=3.0)


class _Loud(RoleCheck):
    """Says "pad" wherever the stretch is audible and nothing where it is silent."""

    def forward(self, wav):
        audible = wav.pow(2).mean(-1).sqrt() > 1e-3
        logits = torch.full((wav.shape[0], len(ROLES)), -10.0)
        logits[:, ROLES.index("pad")] = torch.where(audible, 10.0, -10.0)
        return logits


def test_the_gain_follows_where_the_answer_sounds_like_the_role_asked_for():
    check, rate = _Loud(TINY), 16000
    answer = torch.zeros(2, 12 * rate)
    answer[:, 6 * rate:] = 0.1 * torch.randn(2, 6 * rate)
    gain = check.gain(answer, rate, "warm pad, low register")
    assert gain.shape == (12 * rate,)
    assert float(gain[: 2 * rate].max()) < 0.01 and float(gain[-2 * rate:].min()) > 0.99
    assert check.gain(answer, rate, "bright detuned saw") is None  # names no role: nothing to check
    assert float(check.gain(answer, rate, "saw lead")[-rate:].max()) < 0.01  # a pad is not a lead
    assert torch.equal(check_answer(answer, rate, "bright detuned saw", check), answer)
    assert torch.equal(check_answer(answer, rate, None, check), answer)


def test_below_the_threshold_the_gain_falls_as_a_power_of_the_probability():
    check = RoleCheck(RoleCheckConfig(widths=[4], threshold=0.5, power=2.0))
    torch.nn.init.zeros_(check.head.weight)
    with torch.no_grad():
        check.head.bias.copy_(torch.logit(torch.tensor([0.9, 0.25, 0.5, 0.5, 0.5, 0.5])))
    answer = torch.randn(1, 5 * 16000)
    assert torch.allclose(check.gain(answer, 16000, "pad"), torch.full((5 * 16000,), 0.25), atol=1e-4)
    assert torch.allclose(check.gain(answer, 16000, "lead"), torch.ones(5 * 16000), atol=1e-6)
    # a description naming two roles is checked against the likelier
    assert torch.allclose(check.gain(answer, 16000, "pad with a lead"), torch.ones(5 * 16000), atol=1e-6)


def test_training_learns_the_roles_of_the_parts_and_that_the_other_instruments_have_none(tmp_path):
    source = SyntheticSource(num_tracks=10, seed=3, track_duration=12.0, cache=10)
    path = train_role_check(source, tmp_path / "check.pt", steps=400, batch_size=16, lr=5e-3, others=0.3,
                            config=TINY, progress=False)
    check = load_role_check(path)
    assert check.config == TINY

    def probabilities(crop):
        with torch.no_grad():
            return torch.sigmoid(check(crop))[0]

    right, asked, rests, roles_heard = 0, [], [], []
    for info in source.tracks():
        audio = source.load(info.name, 16000, 1)
        rest = audio.mix - audio.synth  # piano, organ, strings, drums: no synth role
        rests += [float(probabilities(rest[:, s:s + 32000]).max()) for s in range(0, rest.shape[-1] - 32000, 32000)]
        named = [(audio.parts[p.name], p.description) for p in info.parts] or [(audio.synth, info.description)]
        for part, text in named:
            roles = [ROLES.index(r) for r in roles_named(text.split(";")[0])]
            for s in range(0, part.shape[-1] - 32000, 32000):
                crop = part[:, s:s + 32000]
                if crop.pow(2).mean().sqrt() < 1e-3:
                    continue
                p = probabilities(crop)
                right += int(p.argmax()) in roles
                asked.append(float(p[roles].mean()))
                roles_heard += roles
    most = max(roles_heard.count(r) for r in set(roles_heard)) / len(asked)  # always naming the commonest role
    assert len(asked) >= 40 and right / len(asked) > most + 0.1, (right, len(asked), most)
    assert sum(asked) / len(asked) - sum(rests) / len(rests) > 0.15


def test_a_saved_check_loads_as_it_was_and_a_broken_file_is_one_line(tmp_path):
    torch.manual_seed(0)
    check = RoleCheck(TINY).eval()
    save_role_check(check, tmp_path / "c.pt")
    again, wav = load_role_check(tmp_path / "c.pt"), torch.randn(3, 32000)
    assert torch.allclose(again(wav), check(wav), atol=1e-5)
    assert load_role_check(tmp_path / "none.pt") is None
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a RoleCheck checkpoint"):
        load_role_check(tmp_path / "bad.pt")


def test_the_bundled_check_silences_parts_the_example_lacks_and_keeps_the_one_it_has():
    """The example's synth is a "warm pulse lead" (medium attack, chorus, reverb). Asked for
    roles it lacks, the bundled query model answers near silence with the check, at least 10 dB
    below its answer without; asked for its lead, about as loud as without. A pad is the
    exception the docs tell of: this lead's answer to "warm pad" sounds like a pad to the check."""
    from synthgen_lib.audio import load_audio
    from synthgen_lib.separate import separate

    assert BUNDLED_CHECK.is_file()
    mix = load_audio(BUNDLED_CHECK.parents[1] / "examples" / "mix" / "example.flac", 32000, 2)[:, : 20 * 32000]

    def faded(query):
        checked, plain = (separate(mix, "synthlstm-demo", 32000, query=query, role_check=check).synth
                          for check in (True, False))
        return float(10 * torch.log10(plain.pow(2).sum() / checked.pow(2).sum()))

    lacking = {q: faded(q) for q in ("bright arp", "soft pluck", "synth bass", "stab chords")}
    assert all(db > 10 for db in lacking.values()), lacking
    assert faded("warm pulse lead") < 3


def test_the_separators_answers_teach_the_role_asked_for_and_not_a_missing_one(tmp_path):
    import random

    from synthgen_lib.audio import resample
    from synthgen_lib.data.queries import QueryPicker
    from synthgen_lib.models import save_checkpoint
    from synthgen_lib.roles import _answers
    from synthgen_lib.separate import separate

    from .conftest import query_separator

    source = SyntheticSource(num_tracks=6, seed=3, track_duration=6.0, cache=6)
    ckpt = save_checkpoint(tmp_path / "q.pt", query_separator())
    answers = _answers(source, ckpt, 16000, random.Random(0))
    infos, kinds = list(source.tracks()), {"present": 0, "absent": 0}
    picker = QueryPicker(infos)
    assert len(answers) == sum(len(t.part_descriptions()) + bool(picker.absent(t)) for t in infos)
    for answer, labels, weights in answers:
        assert answer.shape == (6 * 16000,)
        if labels.any():  # a part the track has: its roles, every role weighed
            kinds["present"] += 1
            assert torch.equal(weights, torch.ones(len(ROLES)))
        else:  # a part it lacks: "not this role", only the roles asked for weighed
            kinds["absent"] += 1
            assert 0 < weights.sum() < len(ROLES)
    assert min(kinds.values()) > 0
    first = infos[0]
    mix = source.load(first.name, 32000, 2).mix  # the separator's rate; the check hears 16 kHz
    expected = separate(mix, ckpt, 32000, query=first.part_descriptions()[0], role_check=False).synth.mean(0)
    expected = resample(expected[None], 32000, 16000)[0]
    assert torch.allclose(answers[0][0], expected, atol=1e-5)
    assert torch.equal(answers[0][1], torch.tensor([float(r in roles_named(first.part_descriptions()[0]))
                                                    for r in ROLES]))
