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
    codes.load_codec_into(model)  # the tiny codec travels with its tokens
    assert (folder / "codec.pt").is_file() and model.codec_fingerprint() == codes.settings["codec"]
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


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("entry", ["../outside.pt", "/etc/passwd", "a/../../b.pt"])
def test_manifest_entries_cannot_leave_the_dataset_folder(tmp_path, synthgen_codes, entry):
    folder = tmp_path / "codes"
    folder.mkdir()
    manifest = json.loads((synthgen_codes[0] / "manifest.json").read_text())
    manifest["shards"] = [{"file": entry, "windows": 1, "splits": {"train": 1, "valid": 0}}]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="refusing"):
        Codes(folder).dataset("train")


def test_a_malicious_shard_is_refused_and_never_runs(tmp_path, synthgen_codes):
    import pickle

    folder = tmp_path / "codes"
    folder.mkdir()
    marker = tmp_path / "pwned"
    (folder / "manifest.json").write_text((synthgen_codes[0] / "manifest.json").read_text())
    with open(folder / "shard-00000.pt", "wb") as f:
        pickle.dump({"synth": _Marker(str(marker))}, f)
    with pytest.raises(DatasetError, match="shard-00000.pt: unreadable shard"):
        Codes(folder).dataset("train")
    assert not marker.exists()


def test_an_encode_killed_with_sigkill_leaves_no_half_shard_and_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    settings = dict(TINY_SYNTHGEN)
    script = tmp_path / "encode_run.py"
    script.write_text(textwrap.dedent(f"""
        from synthgen_lib.data.synthetic import SyntheticSource
        from synthgen_lib.encode import encode
        encode(SyntheticSource(num_tracks=8, seed=11, track_duration=12.0), {str(tmp_path / 'codes')!r},
               {settings!r}, hop=1.0, shard_size=4, batch_size=2, progress=False)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=str(tmp_path))
    manifest = tmp_path / "codes" / "manifest.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the encode finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    listed = {s["file"] for s in json.loads(manifest.read_text())["shards"]}
    on_disk = {p.name for p in (tmp_path / "codes").glob("shard-*.pt")}
    assert listed == on_disk and 2 <= len(listed) < 18  # no shard file the manifest does not vouch for
    assert not Codes(tmp_path / "codes").complete
    for name in listed:  # every listed shard is whole
        torch.load(tmp_path / "codes" / name, weights_only=True)
    report = encode(SyntheticSource(num_tracks=8, seed=11, track_duration=12.0), tmp_path / "codes", settings, hop=1.0,
                    shard_size=4, batch_size=2, progress=False)
    assert report.shards_skipped == len(listed) and Codes(tmp_path / "codes").complete
    assert not list((tmp_path / "codes").glob(".shard-*"))
