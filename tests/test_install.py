"""The normal install must leave audiocraft (MusicGen) importable, so later work can rely on it."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata


def test_audiocraft_and_its_import_needs_are_installed():
    assert metadata.version("audiocraft") == "1.3.0"
    code = ("import audiocraft.models as m, xformers.ops; "
            "print(m.MusicGen.__name__, m.LMModel.__name__, m.EncodecModel.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["MusicGen", "LMModel", "EncodecModel"]
