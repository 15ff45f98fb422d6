"""Every bad input SynthGen was tried with, and the one line it answers (docs/reliability.md table).

Each case builds the bad input in a temporary folder, runs the CLI (or the library function
the notebooks call) and checks the message: the file named, the problem, what to do, one line,
no traceback. ``test_reliability_page_lists_every_case`` keeps the docs/reliability.md table in
step with this list.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from synthgen_lib.cli import main

from .conftest import tone, write


def _wav(path: Path, seconds=1.0, rate=16000, channels=1) -> Path:
    return write(path, tone(seconds, rate, channels), rate)


def _dataset(root: Path, names=("a",), seconds=12.0) -> Path:
    for n in names:
        _wav(root / "mix" / f"{n}.wav", seconds)
        _wav(root / "synth" / f"{n}.wav", seconds)
    return root


def _put(p: Path, data: bytes | str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)
    return p


def _truncated(p: Path) -> Path:
    full = _wav(p.with_name("full.wav"), 2.0).read_bytes()
    p.write_bytes(full[: len(full) // 2])
    return p


def _nan(p: Path) -> Path:
    x = tone(0.5, 8000)
    x[0, 100] = np.inf
    return write(p, x, 8000, "FLOAT")


def _checkpoint(p: Path, family="lstm") -> Path:
    from synthgen_lib.models import SynthEncoder, SynthEncoderConfig, SynthLSTM, SynthLSTMConfig, save_checkpoint

    model = (SynthLSTM(SynthLSTMConfig(n_fft=256, hop_length=64, n_mels=8, hidden_size=8, num_layers=1))
             if family == "lstm" else SynthEncoder(SynthEncoderConfig(channels=4, depth=2, lstm_layers=1)))
    return save_checkpoint(p, model)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _payload(p: Path, **changes) -> Path:
    """A tiny SynthLSTM checkpoint with fields of its payload replaced (``config_x`` sets one
    config setting, ``nan=True`` poisons one weight)."""
    _checkpoint(p)
    payload = torch.load(p, weights_only=True)
    for key, value in changes.items():
        if key.startswith("config_"):
            payload["config"][key[7:]] = value
        elif key == "nan":
            next(iter(payload["model"].values())).view(-1)[0] = float("nan")
        elif value is None:
            payload.pop(key)
        else:
            payload[key] = value
    torch.save(payload, p)
    return p


def _fifo(p: Path) -> Path:
    import os

    os.mkfifo(p)
    return p


def _vbr_mp3_without_length_header(p: Path) -> Path:
    """A 20 s variable-bit-rate MP3 whose first frame (the Xing header that gives its length)
    is cut off, as some encoders and cutters leave them."""
    rate = 44100
    t = np.arange(20 * rate) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)  # silence, then a tone: VBR
    x += 0.05 * np.random.default_rng(0).standard_normal(len(t)) * (t > 10)
    sf.write(str(p), x.astype(np.float32), rate, format="MP3", bitrate_mode="VARIABLE", compression_level=0.5)
    data = p.read_bytes()
    assert b"Xing" in data[:64]
    h = int.from_bytes(data[:4], "big")
    kbps = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[(h >> 12) & 15]
    first = 144 * kbps * 1000 // rate + ((h >> 9) & 1)  # MPEG-1 layer III frame length
    p.write_bytes(data[first:])
    return p


def _tokens(t: Path, manifest_changes: dict | None = None, shard: dict | None = None) -> Path:
    """A codes folder with one shard, its manifest or shard content replaced."""
    folder = t / "codes"
    folder.mkdir()
    manifest = {"format": "synthgen-codes", "settings": {}, "model": {}, "counts": {"train": 1, "valid": 1},
                "shards": [{"file": "shard-00000.pt", "windows": 2}], **(manifest_changes or {})}
    manifest = {k: v for k, v in manifest.items() if v is not None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    torch.save(shard if shard is not None else {}, folder / "shard-00000.pt")
    return folder


def _export_without_side_file(t: Path) -> Path:
    from synthgen_lib.models.synthgen import SynthGen, SynthGenConfig
    from synthgen_lib.models.synthgen_io import export

    from .conftest import TINY_SYNTHGEN

    folder = export(SynthGen(SynthGenConfig(**TINY_SYNTHGEN)), t / "export")
    (folder / "synthgen.pt").unlink()
    return folder


def _no_network(mp) -> None:
    """The hub's client as it fails with no network (after its retries)."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def download(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and we cannot "
                                      "find the requested files in the local cache.")
    mp.setattr(huggingface_hub, "hf_hub_download", download)


def _disk_full(mp) -> None:
    """Every audio write fails as libsndfile fails on a full disk."""
    def write(self, data):
        raise sf.LibsndfileError(2)  # "System error."
    mp.setattr(sf.SoundFile, "write", write)


def _separate(tmp, audio: Path, model: Path | None = None):
    model = model or _checkpoint(tmp / "ok.pt")
    return ["separate", str(audio), "--model", str(model), "--output", str(tmp / "out")]


# (docs/reliability.md row: input, what happens, expected message fragment, args builder)
CASES = [
    ("empty audio file", "refused", "the file is empty (0 bytes)",
     lambda t: _separate(t, _put(t / "x.wav", b""))),
    ("truncated WAV (unfinished copy)", "refused", "the file is truncated: its header promises",
     lambda t: _separate(t, _truncated(t / "x.wav"))),
    ("non-audio file named .wav", "refused", "not a readable audio file",
     lambda t: _separate(t, _put(t / "x.wav", "<html>not audio</html>"))),
    ("unsupported format (AAC in .m4a)", "refused", "use WAV, FLAC, OGG or MP3",
     lambda t: _separate(t, _put(t / "x.m4a", b"\x00\x00\x00\x20ftypM4A " + bytes(64)))),
    ("NaN or infinite samples", "refused", "contains NaN or infinite samples",
     lambda t: _separate(t, _nan(t / "x.wav"))),
    ("missing file / Drive not mounted", "refused", "no such file — check the path (is Google Drive mounted?)",
     lambda t: _separate(t, t / "drive" / "MyDrive" / "song.wav")),
    ("dataset folder missing / Drive not mounted", "refused", "no such folder — check the path (is Google Drive mounted?)",
     lambda t: ["prepare", "--source", "folder", "--root", str(t / "drive" / "dataset")]),
    ("dataset without mix/ and synth/", "refused", "expected 'mix/' and 'synth/' folders inside",
     lambda t: ["prepare", "--source", "folder", "--root", str(_put(t / "ds" / "notes.txt", "x").parent)]),
    ("mix without synth, synth without mix", "skipped, listed", "mix without synth (skipped) (1): b.wav",
     lambda t: ["prepare", "--source", "folder", "--root",
                str(_wav(_dataset(t / "ds") / "mix" / "b.wav").parent.parent)]),
    ("one unreadable file in a dataset", "skipped, listed", "unreadable audio (skipped) (1):",
     lambda t: ["prepare", "--source", "folder", "--root",
                str((_dataset(t / "ds"), _put(t / "ds" / "mix" / "c.wav", "x"),
                     _put(t / "ds" / "synth" / "c.wav", "x"), t / "ds")[-1])]),
    ("mix and synth of different length or rate", "aligned to the shorter, stated",
     "mix and synth lengths differ (using the shorter)",
     lambda t: ["prepare", "--source", "folder", "--root",
                str((_dataset(t / "ds"), _wav(t / "ds" / "synth" / "a.wav", 11.0, 44100), t / "ds")[-1])]),
    ("missing description", "default used, stated", "no description (using 'synthesizer')",
     lambda t: ["prepare", "--source", "folder", "--root", str(_dataset(t / "ds"))]),
    ("clip shorter than a window", "zero-padded (or skipped with --short skip), stated",
     "shorter than the 10 s window (shortest 3.0 s) and were zero-padded",
     lambda t: ["prepare", "--source", "folder", "--root", str(_dataset(t / "ds", seconds=3.0))]),
    ("corrupt or truncated checkpoint", "refused", "not a readable checkpoint",
     lambda t: _separate(t, _wav(t / "x.wav"), _put(t / "bad.pt", b"PK\x03\x04junk"))),
    ("checkpoint of another model family", "refused", "holds a 'lstm' run, not 'encoder'",
     lambda t: (_checkpoint(t / "run" / "last.pt"), _dataset(t / "ds", ("a", "b")),
                ["train", "--model", "encoder", "--data", str(t / "ds"), "--output", str(t / "run")])[-1]),
    ("checkpoint that would run code when unpickled", "refused, never run", "refused — it contains Python objects",
     lambda t: _separate(t, _wav(t / "x.wav"), (torch.save({"x": _Evil()}, t / "evil.pt"), t / "evil.pt")[-1])),
    ("a .pt file that is not a SynthGen checkpoint", "refused", "not a SynthGen checkpoint",
     lambda t: _separate(t, _wav(t / "x.wav"), (torch.save({"w": torch.zeros(2)}, t / "o.pt"), t / "o.pt")[-1])),
    ("a web page saved as the checkpoint (failed Drive download)", "refused", "a web page (HTML), not a checkpoint",
     lambda t: _separate(t, _wav(t / "x.wav"), _put(t / "m.pt", "<!DOCTYPE html><html>Google Drive</html>"))),
    ("random bytes as the checkpoint", "refused", "not a checkpoint (it is not a torch file)",
     lambda t: _separate(t, _wav(t / "x.wav"), _put(t / "m.pt", bytes(range(7, 255)) * 4))),
    ("--segment in samples instead of seconds", "refused", "segment must be between 0.5 and 300 seconds",
     lambda t: _separate(t, _wav(t / "x.wav")) + ["--segment", "44100"]),
    ("--wiener with a model that has no Wiener option", "refused", "SynthEncoder has no 'wiener' option",
     lambda t: _separate(t, _wav(t / "x.wav"), _checkpoint(t / "enc.pt", "encoder")) + ["--wiener"]),
    ("--query with a model trained without text queries", "refused", "this SynthLSTM was trained without text queries",
     lambda t: _separate(t, _wav(t / "x.wav"), _checkpoint(t / "lstm.pt")) + ["--query", "warm pad"]),
    ("text queries for a family that has none", "refused", "the synthmatch family takes no text queries",
     lambda t: ["train", "--model", "synthmatch", "--data", str(_dataset(t / "ds")), "--output", str(t / "run"),
                "--queries", "0.5"]),
    ("all-silent synth stem in a dataset", "kept, stated", "track(s) with an all-silent synth stem",
     lambda t: ["prepare", "--source", "folder", "--output", str(t / "out"), "--root",
                str((_dataset(t / "ds"), write(t / "ds" / "synth" / "a.wav", np.zeros((1, 16000 * 12), np.float32),
                                               16000), t / "ds")[-1])]),
    ("SynthGen tokens folder never encoded", "refused", "no manifest.json — encode the dataset first",
     lambda t: ["train", "--model", "synthgen", "--data", str((t / "codes").mkdir() or t / "codes"),
                "--output", str(t / "r")]),
    ("token manifest entry pointing outside its folder", "refused", "it points outside the dataset folder",
     lambda t: ["train", "--model", "synthgen", "--data", str(_put(t / "codes" / "manifest.json", json.dumps(
         {"format": "synthgen-codes", "settings": {}, "model": {}, "counts": {"train": 1, "valid": 1},
          "shards": [{"file": "../../secret.pt", "windows": 2}]})).parent), "--output", str(t / "r")]),
    ("a separation checkpoint given to generate", "refused", "this is a 'lstm' checkpoint, not 'synthgen'",
     lambda t: ["generate", str(_wav(t / "x.wav")), "--model", str(_checkpoint(t / "ok.pt")), "--output",
                str(t / "g")]),
    ("invalid --model-config JSON", "refused", "--model-config is not valid JSON",
     lambda t: ["train", "--model", "lstm", "--data", "synthetic", "--output", str(t / "r"), "--model-config", "{oops"]),
    ("--lr so high that training diverges", "refused at the first non-finite loss or weight, no broken checkpoint",
     "training diverged at step",
     lambda t: ["train", "--model", "encoder", "--data", str(_dataset(t / "ds", ("a", "b"))), "--output", str(t / "r"),
                "--lr", "1e12", "--grad-clip", "0", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "2",
                "--segment", "1", "--save-every", "1", "--model-config", '{"channels": 4, "depth": 2}']),
    ("prepare --output the same as --root (would overwrite your stems)", "refused, nothing written",
     "the output folder overlaps the dataset folder",
     lambda t: ["prepare", "--source", "folder", "--root", str(_dataset(t / "ds")), "--output", str(t / "ds")]),
    ("prepare --output a folder of other files", "refused, nothing written",
     "already holds files that 'synthgen prepare' did not write",
     lambda t: ["prepare", "--tracks", "1", "--track-duration", "2", "--output", str(_put(t / "mine" / "a.wav", "x").parent)]),
    ("checkpoint with NaN weights (a diverged run)", "refused", "holds NaN or infinite weights",
     lambda t: _separate(t, _wav(t / "x.wav"), _payload(t / "m.pt", nan=True))),
    ("checkpoint config with a huge size (hidden_size 10^8)", "refused before allocating",
     "invalid model setting: hidden_size=100000000 is out of range",
     lambda t: _separate(t, _wav(t / "x.wav"), _payload(t / "m.pt", config_hidden_size=10 ** 8))),
    ("checkpoint config with hop_length 0", "refused", "invalid model setting: hop_length=0 is out of range",
     lambda t: _separate(t, _wav(t / "x.wav"), _payload(t / "m.pt", config_hop_length=0))),
    ("checkpoint config that is a list", "refused", "its model settings are a list",
     lambda t: _separate(t, _wav(t / "x.wav"), _payload(t / "m.pt", config=[1, 2]))),
    ("checkpoint without weights", "refused", "holds no model weights",
     lambda t: _separate(t, _wav(t / "x.wav"), _payload(t / "m.pt", model=None))),
    ("--model-config with a huge size", "refused before allocating",
     "--model-config: invalid model setting: hidden_size=100000000 is out of range",
     lambda t: ["train", "--model", "lstm", "--data", "synthetic", "--output", str(t / "r"),
                "--model-config", '{"hidden_size": 100000000}']),
    ("--model-config whose sizes multiply to gigabytes", "refused before allocating",
     "GiB of weights, more than the 8 GiB limit",
     lambda t: ["train", "--model", "lstm", "--data", "synthetic", "--output", str(t / "r"),
                "--model-config", '{"hidden_size": 8192, "num_layers": 16}']),
    ("--segment nan or inf", "refused", "argument --segment: must be a finite number greater than 0",
     lambda t: _separate(t, _wav(t / "x.wav")) + ["--segment", "nan"]),
    ("--segment shorter than a spectrogram frame", "refused", "segment must be between 0.5 and 300 seconds",
     lambda t: _separate(t, _wav(t / "x.wav")) + ["--segment", "0.01"]),
    ("audio header with an absurd sample rate (1 Hz)", "refused", "its header gives a sample rate of 1 Hz",
     lambda t: _separate(t, write(t / "x.wav", tone(0.5, 8000), 1))),
    ("a named pipe (FIFO) as input", "refused, never waits", "is not a regular file (a named pipe",
     lambda t: _separate(t, _fifo(t / "pipe.wav"))),
    ("variable-bit-rate MP3 without a length header", "refused (would be cut short)",
     "only 4.9 s can be decoded (a variable-bit-rate MP3 without a length header)",
     lambda t: _separate(t, _vbr_mp3_without_length_header(t / "song.mp3"))),
    ("disk full while writing the stems", "refused, earlier stems kept", "could not be written (System error.)",
     lambda t, mp: [*_separate(t, _wav(t / "x.wav")), *(_disk_full(mp) or [])]),  # the input is written first
    ("SynthGen export folder without synthgen.pt", "refused", "synthgen.pt: missing",
     lambda t: ["generate", str(_wav(t / "x.wav")), "--model", str(_export_without_side_file(t)),
                "--output", str(t / "g")]),
    ("generate --cfg-coef nan", "refused", "argument --cfg-coef: must be a finite number",
     lambda t: ["generate", str(_wav(t / "x.wav")), "--model", "tiny", "--output", str(t / "g"), "--cfg-coef", "nan"]),
    ("generate --overlap nan", "refused", "argument --overlap: must be a finite number",
     lambda t: ["generate", str(_wav(t / "x.wav")), "--model", "tiny", "--output", str(t / "g"), "--overlap", "nan"]),
    ("description with bytes that are not UTF-8", "refused", "argument --description: is not valid UTF-8 text",
     lambda t: ["generate", str(_wav(t / "x.wav")), "--model", "tiny", "--output", str(t / "g"),
                "--description", b"warm pad \xff".decode("utf-8", "surrogateescape")]),
    ("prepare --track-duration 1e9", "refused", "argument --track-duration: must be at most 3600",
     lambda t: ["prepare", "--track-duration", "1e9"]),
    ("train --lr nan", "refused", "argument --lr: must be a finite number greater than 0",
     lambda t: ["train", "--model", "lstm", "--data", "synthetic", "--output", str(t / "r"), "--lr", "nan"]),
    ("token manifest without its settings (another version)", "refused", "the manifest has no 'settings' dict",
     lambda t: ["train", "--model", "synthgen", "--data", str(_tokens(t, {"settings": None})), "--output", str(t / "r")]),
    ("token shard without its track names", "refused", "not a complete shard (no track)",
     lambda t: ["train", "--model", "synthgen", "--data", str(_tokens(t, shard={
         "synth": torch.zeros(2, 4, 8), "mix": torch.zeros(2, 4, 8), "chroma": torch.zeros(2, 0, 12),
         "description": ["a", "b"], "start": torch.zeros(2), "split": ["train", "valid"]})), "--output", str(t / "r")]),
    ("float mix above full scale, 24-bit stems", "both stems lowered to fit, stated", "both stems were lowered by 12.0 dB",
     lambda t: _separate(t, write(t / "loud.wav", tone(1.0, 16000, 2, amp=4.0), 16000, "FLOAT"))),
    ("the same file given twice", "separated once, stated", "given more than once; separated once",
     lambda t: (lambda args: args[:2] + args[1:])(_separate(t, _wav(t / "x.wav")))),
    ("a sample rate that shares little with 32 kHz (22254 Hz)", "separated with a bounded resampler", "x.wav -> ",
     lambda t: _separate(t, _wav(t / "x.wav", rate=22254))),
    ("a batch with one bad file", "the others written, failures listed, exit 2", "1 of 3 files failed",
     lambda t: _separate(t, _wav(t / "a.wav"))[:2] + [str(_put(t / "b.wav", b"")), str(_wav(t / "c.wav"))]
     + _separate(t, _wav(t / "a.wav"))[2:]),
    ("a pretrained MusicGen name with no network", "refused", "cannot reach the model hub to download it (no network?)",
     lambda t, mp: (_no_network(mp), ["generate", str(_wav(t / "x.wav")), "--model", "facebook/musicgen-small",
                                       "--output", str(t / "g")])[-1]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(tmp_path, capsys, monkeypatch, case):
    _, outcome, expected, build = case
    args = build(tmp_path, monkeypatch) if build.__code__.co_argcount == 2 else build(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    if outcome.startswith("the others written"):  # a batch: every failure on its line, then the count
        assert code == 2 and "Traceback" not in captured.err and expected in captured.err.strip().splitlines()[-1]
        assert captured.out.count(" -> ") == 2
    elif outcome == "refused" or outcome.startswith("refused"):
        assert code == 2
        lines = [line for line in captured.err.strip().splitlines() if line.strip() and "%|" not in line]  # no bars
        assert len(lines) == 1 and lines[0].startswith("synthgen: error: ") and "Traceback" not in captured.err
        assert expected in lines[0]
    else:
        assert code == 0 and expected in captured.out
    assert "pwned" not in captured.out


def test_reliability_page_lists_every_case():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    readme = readme.split("<!-- bad-input-table -->")[1].split("<!-- /bad-input-table -->")[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \| `(.+?)` \|$", readme, flags=re.M)
    assert [(r[0], r[1], r[2]) for r in rows] == [(c[0], c[1], c[2]) for c in CASES]


@pytest.mark.parametrize("channels, subtype", [(1, "PCM_U8"), (2, "PCM_16"), (4, "PCM_24"), (6, "FLOAT")])
def test_any_channel_count_and_bit_depth_separates_like_the_input(tmp_path, channels, subtype):
    path = tmp_path / "in.wav"
    sf.write(str(path), tone(0.6, 22050, channels).T * 0.5, 22050, subtype=subtype)
    assert main(_separate(tmp_path, path)) == 0
    info = sf.info(str(tmp_path / "out" / "in" / "synth.wav"))
    assert (info.channels, info.samplerate, info.frames) == (channels, 22050, 13230)
