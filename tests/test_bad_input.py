"""Every bad input SynthGen was tried with, and the one line it answers (README table).

Each case builds the bad input in a temporary folder, runs the CLI (or the library function
the notebooks call) and checks the message: the file named, the problem, what to do, one line,
no traceback. ``test_readme_lists_every_case`` keeps the README table in step with this list.
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


def _separate(tmp, audio: Path, model: Path | None = None):
    model = model or _checkpoint(tmp / "ok.pt")
    return ["separate", str(audio), "--model", str(model), "--output", str(tmp / "out")]


# (README row: input, what happens, expected message fragment, args builder)
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
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(tmp_path, capsys, case):
    _, outcome, expected, build = case
    args = build(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    if outcome == "refused" or outcome.startswith("refused"):
        assert code == 2
        lines = [line for line in captured.err.strip().splitlines() if line.strip() and "%|" not in line]  # no bars
        assert len(lines) == 1 and lines[0].startswith("synthgen: error: ") and "Traceback" not in captured.err
        assert expected in lines[0]
    else:
        assert code == 0 and expected in captured.out
    assert "pwned" not in captured.out


def test_readme_lists_every_case():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
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
