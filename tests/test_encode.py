"""encode.py: windows → EnCodec token shards + manifest, resumable, never half-written."""
from __future__ import annotations

import json

import pytest
import torch

from synthgen_lib.data.synthetic import SyntheticSource
from synthgen_lib.encode import Codes, encode
from synthgen_lib.errors import DatasetError, SynthGenError
from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig
from tests.conftest import TINY_SYNTHGEN, quiet_accompaniment


def _source():
    return SyntheticSource(num_tracks=4, seed=11, track_duration=9.0)


def test_codes_and_manifest_round_trip(synthgen_codes):
    folder, report = synthgen_codes
    manifest = json.loads((folder / "manifest.json").read_text())
    total = sum(manifest["counts"].values())
    assert report.shards_written == len(manifest["shards"]) == -(-total // 16)
    assert sum(s["windows"] for s in manifest["shards"]) == total and report.realtime > 0
    codes = Codes(folder)
    assert codes.complete and codes.model_config["window"] == TINY_SYNTHGEN["window"]
    train, valid = codes.dataset("train"), codes.dataset("valid")
    assert len(train) + len(valid) == total and len(valid) > 0
    assert not set(train.tracks) & set(valid.tracks)  # held out by track
    # the stored tokens are exactly what the model's codec makes of that window
    model = SynthGen(SynthGenConfig(**codes.model_config))
    item = train.items[3]
    source = quiet_accompaniment()
    audio = source.load(item["track"], model.sample_rate, 1, float(item["start"]), TINY_SYNTHGEN["window"])
    assert torch.equal(model.encode_audio(audio.synth[None])[0].to(torch.int16), item["synth"])
    assert torch.equal(model.encode_audio(audio.mix[None])[0].to(torch.int16), item["mix"])
    frames = int(TINY_SYNTHGEN["window"] * model.frame_rate)
    synth, mix, chroma, text = train[0]
    assert synth.shape == mix.shape == (model.n_q, frames) and synth.max() < model.card
    assert chroma.shape[-1] == 12 and chroma.shape[0] > 0 and isinstance(text, str)


def test_an_interrupted_encode_resumes_and_matches_an_uninterrupted_one(tmp_path):
    whole = encode(_source(), tmp_path / "whole", dict(TINY_SYNTHGEN), hop=2.0, shard_size=4, progress=False)
    first = encode(_source(), tmp_path / "split", dict(TINY_SYNTHGEN), hop=2.0, shard_size=4, progress=False,
                   stop_after_shards=2)
    assert first.shards_written == 2
    (tmp_path / "split" / ".shard-00002.pt.tmp123").write_bytes(b"half a shard")  # left by a killed run
    rest = encode(_source(), tmp_path / "split", dict(TINY_SYNTHGEN), hop=2.0, shard_size=4, progress=False)
    assert rest.shards_skipped == 2 and rest.shards_written == whole.shards_written - 2
    assert not list((tmp_path / "split").glob(".shard-*"))
    a, b = Codes(tmp_path / "whole"), Codes(tmp_path / "split")
    for split in ("train", "valid"):
        x, y = a.dataset(split), b.dataset(split)
        assert len(x) == len(y)
        assert all(torch.equal(x[i][0], y[i][0]) and torch.equal(x[i][1], y[i][1]) for i in range(len(x)))


def test_a_folder_encoded_with_other_settings_is_refused(tmp_path):
    encode(_source(), tmp_path, dict(TINY_SYNTHGEN), hop=2.0, shard_size=8, progress=False, stop_after_shards=1)
    with pytest.raises(SynthGenError, match="other settings \\(hop, windows\\)"):
        encode(_source(), tmp_path, dict(TINY_SYNTHGEN), hop=3.0, shard_size=8, progress=False)


def test_missing_or_corrupt_manifest_and_shards_get_one_clear_line(tmp_path, synthgen_codes):
    with pytest.raises(DatasetError, match="no manifest.json"):
        Codes(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        Codes(tmp_path)
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "manifest.json").write_text((synthgen_codes[0] / "manifest.json").read_text())
    (folder / "shard-00000.pt").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="shard-00000.pt: unreadable shard"):
        Codes(folder).dataset("train")
