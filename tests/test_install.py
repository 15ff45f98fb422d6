"""The install: audiocraft (MusicGen) and Demucs import on any torch, xformers or not, and the
requirement files agree (the lock pins what Colab's loose requirements name)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, pythonpath: list[Path] = ()) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (the test fails on its stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, ROOT]))}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_audiocraft_and_demucs_are_installed_and_import():
    assert metadata.version("audiocraft") == "1.3.0" and metadata.version("demucs") == "4.1.0"
    out = _python("""
        from synthgen_lib.models import audiocraft_compat
        import audiocraft.models as m
        # what musicgen-melody's chroma conditioner imports from demucs
        from demucs import pretrained
        from demucs.apply import apply_model
        from demucs.audio import convert_audio
        print(m.MusicGen.__name__, m.LMModel.__name__, m.EncodecModel.__name__)
    """)
    assert out.split() == ["MusicGen", "LMModel", "EncodecModel"]


def _package(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


# An xformers wheel built for another torch: the package imports, its compiled ops do not.
BROKEN = {"xformers/__init__.py": "from . import _cpp_lib\n",
          "xformers/_cpp_lib.py": "BUILT_FOR_TORCH = '2.9.1'\n",
          "xformers/ops/__init__.py": "raise OSError('xformers/_C.so: undefined symbol: _ZN3c104impl (torch 2.9.1)')\n",
          "xformers/profiler/__init__.py": "raise OSError('undefined symbol')\n"}
ABSENT = """
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "xformers":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NotInstalled())
"""
# audiocraft's attention three ways on the same weights: torch's MultiheadAttention (custom=False,
# no xformers), its own (custom=True: ops.unbind) and the pretrained MusicGens' (memory_efficient=True:
# LowerTriangularMask, then torch's scaled_dot_product_attention).
ATTEND = """
    import importlib.util, json, torch
    from synthgen_lib.models import audiocraft_compat
    from audiocraft.modules.transformer import StreamingTransformer
    import xformers.ops

    torch.manual_seed(0)
    x = torch.randn(2, 12, 16)
    shape = dict(d_model=16, num_heads=2, dim_feedforward=32, num_layers=2, causal=True, dropout=0.0)
    own = StreamingTransformer(**shape, custom=True).eval()
    nets = [StreamingTransformer(**shape, custom=False).eval(), own,
            StreamingTransformer(**shape, custom=True, memory_efficient=True).eval()]
    for net in nets:
        net.load_state_dict(own.state_dict())
    with torch.no_grad():
        reference, *others = [net(x) for net in nets]
    try:
        xformers.ops.memory_efficient_attention(x, x, x)
        refused = ""
    except RuntimeError as exc:
        refused = str(exc)
    print(json.dumps({"real": audiocraft_compat.REAL_XFORMERS, "ops": xformers.ops.__file__,
                      "found": importlib.util.find_spec("xformers").origin,  # what libraries probing for it see
                      "diff": [float((y - reference).abs().max()) for y in others],
                      "scale": float(reference.abs().mean()), "refused": refused}))
"""


@pytest.mark.parametrize("xformers", ["absent", "broken"])
def test_audiocraft_attends_as_torch_does_without_a_working_xformers(tmp_path, xformers):
    if xformers == "broken":
        got = json.loads(_python(ATTEND, [_package(tmp_path, BROKEN)]))
    else:
        got = json.loads(_python(ABSENT + ATTEND))
    assert not got["real"] and got["ops"] == got["found"] == "synthgen_lib.models.audiocraft_compat"
    assert got["scale"] > 0.1 and max(got["diff"]) < 1e-5, got
    assert "'xformers' attention backend needs xformers built for this torch" in got["refused"]


def test_a_working_xformers_is_left_alone(tmp_path):
    folder = _package(tmp_path, {"xformers/__init__.py": "",
                                 "xformers/ops/__init__.py": "from torch import unbind\n"
                                                             "class LowerTriangularMask: pass\n"
                                                             "def memory_efficient_attention(*a):\n"
                                                             "    raise RuntimeError('the real one')\n"})
    got = json.loads(_python(ATTEND, [folder]))
    assert got["real"] and got["ops"] == str(folder / "xformers" / "ops" / "__init__.py")
    assert got["found"] == str(folder / "xformers" / "__init__.py")
    assert got["refused"] == "the real one" and max(got["diff"]) < 1e-5


def _requirements(name: str) -> dict[str, Requirement]:
    lines = (ROOT / name).read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r for r in reqs}


def test_the_lock_pins_every_requirement_within_colabs_bounds():
    loose, lock = _requirements("requirements.txt"), _requirements("requirements-lock.txt")
    for name, req in loose.items():
        assert name in lock, f"requirements-lock.txt does not pin {name}"
        pinned = next(iter(lock[name].specifier)).version
        assert req.specifier.contains(pinned), f"the lock's {name}=={pinned} is outside requirements.txt's {req}"
    assert all(s.operator == "==" for r in lock.values() for s in r.specifier)


def test_no_requirement_file_installs_xformers():
    """xformers (one wheel per torch release) is installed by none of the files; what goes in
    with --no-deps is pinned, and pyproject repeats requirements.txt's bounds."""
    files = ("requirements.txt", "requirements-nodeps.txt", "requirements-lock.txt", "requirements-bench.txt")
    assert all("xformers" not in _requirements(f) for f in files)
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "=="
               for r in _requirements("requirements-nodeps.txt").values())
    loose = _requirements("requirements.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for req in map(Requirement, project):
        assert str(loose[canonicalize_name(req.name)].specifier) == str(req.specifier), req
