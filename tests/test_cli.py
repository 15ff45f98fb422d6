from __future__ import annotations

import subprocess
import sys

from synthgen_lib.cli import main


def test_prepare_writes_the_dataset_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["prepare", "--tracks", "2", "--track-duration", "10.5", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "source: synthetic — 2 tracks" in text and f"dataset at {out}" in text
    assert sorted(p.name for p in (out / "mix").iterdir()) == ["synthetic_s0_00000.wav", "synthetic_s0_00001.wav"]
    assert len(list((out / "description").glob("*.txt"))) == 2


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthgen_lib.cli", "prepare", "--source", "folder",
                           "--root", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"synthgen: error: {tmp_path / 'nowhere'}: no such folder — check the path (is Google Drive mounted?)"]
    assert "Traceback" not in proc.stderr
