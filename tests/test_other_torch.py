"""The Colab install beside another torch than the lock's, in a fresh virtual environment.

Colab ships its own torch (and moves on); SynthGen must neither replace it nor need a package
built for one torch release. Here a new venv gets :data:`OTHER_TORCH` first, then the notebooks'
installer (``synthgen_lib/colab_install.py``: ``requirements.txt``, ``--no-deps
requirements-nodeps.txt``, ``--no-deps -e .``), and the tiny SynthGen path runs through that
venv's own ``synthgen`` command, as do the parts that the newer packages there could break: the
two conditioners of the pretrained models (musicgen-melody's Demucs chroma, the T5 text encoder)
and the description embeddings.

Slow: about three minutes on 2 cores, most of them pip's. ``make test SKIP_OTHER_TORCH=1`` skips
it outside CI, and pytest's summary lists the skip; CI always runs it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import TINY_SYNTHGEN, tone, write

ROOT = Path(__file__).resolve().parents[1]
# The newest CPU build of torch that pip reaches here: PyPI's Linux wheels are CUDA builds (several
# GB with their nvidia-* packages), and the machine's pip finds this one on disk (its find-links).
OTHER_TORCH = "2.13.0+cpu"
# Colab preinstalls a torchaudio built for its torch. PyPI's Linux torchaudio wheels are CUDA builds
# whose optional C++ extension links libc10_cuda.so, so none imports beside a CPU torch: the venv gets
# the newest (declared for any torch >= 2.11) without that extension, which torchaudio's loader then
# reports as unavailable. SynthGen and audiocraft use only its Python (resample, Spectrogram).
OTHER_TORCHAUDIO = "2.11.1"

SKIP = os.environ.get("SKIP_OTHER_TORCH", "") not in ("", "0") and os.environ.get("CI") != "true"
pytestmark = pytest.mark.skipif(SKIP, reason="SKIP_OTHER_TORCH=1: the Colab install beside another torch "
                                             "(tests/test_other_torch.py) did not run; CI runs it")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _run(*command, cwd: Path | None = None, timeout: int = 900) -> str:
    proc = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(map(str, command[:4]))} ...: {(proc.stderr or proc.stdout)[-3000:]}"
    return proc.stdout


def _report(python: Path, code: str) -> dict:
    """Run ``code`` in the venv; it prints one JSON object on its last line."""
    return json.loads(_run(python, "-c", textwrap.dedent(code)).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def venv():
    """``(python, installer's line)`` of a fresh venv holding OTHER_TORCH and SynthGen, Colab's way."""
    with tempfile.TemporaryDirectory(prefix="synthgen-other-torch-") as tmp:
        folder = Path(tmp) / "venv"
        _run(sys.executable, "-m", "venv", folder)
        python = folder / "bin" / "python"
        _run(python, "-m", "pip", "install", "-q", f"torch=={OTHER_TORCH}", f"torchaudio=={OTHER_TORCHAUDIO}",
             timeout=600)
        site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
        for library in (site / "torchaudio" / "lib").glob("*.so"):
            library.unlink()
        line = _run(python, ROOT / "synthgen_lib" / "colab_install.py", ROOT, timeout=1500).strip()
        yield python, line


def test_the_other_torch_is_not_the_locks():
    lock = dict(line.split("==") for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert OTHER_TORCH.split("+")[0] != lock["torch"], "choose another torch than the lock's for this test"


def test_the_install_keeps_the_venvs_torch_and_needs_no_xformers(venv):
    python, line = venv
    got = _report(python, """
        import importlib.metadata, json, pathlib, torch, torchaudio, transformers
        from synthgen_lib.models import audiocraft_compat
        import audiocraft.models, xformers.ops
        wave = torchaudio.functional.resample(torch.ones(1, 44100), 44100, 32000)
        extension = list(pathlib.Path(torchaudio.__file__).parent.glob("lib/*.so"))
        installed = {d.metadata["Name"] for d in importlib.metadata.distributions()}
        print(json.dumps({"torch": torch.__version__, "torchaudio": torchaudio.__version__, "extension": len(extension),
                          "transformers": transformers.__version__, "resampled": list(wave.shape),
                          "xformers_installed": "xformers" in installed,
                          "stand_in": xformers.ops.__file__ == audiocraft_compat.XFORMERS_STAND_IN,
                          "musicgen": audiocraft.models.MusicGen.__name__}))
    """)
    print("venv:", got)
    assert line.startswith("SynthGen ") and f"beside torch {OTHER_TORCH}" in line, line
    # requirements.txt replaced neither (a reinstalled torchaudio would bring its extension back)
    assert (got["torch"], got["torchaudio"].split("+")[0], got["extension"]) == (OTHER_TORCH, OTHER_TORCHAUDIO, 0)
    assert got["resampled"] == [1, 32000]
    assert not got["xformers_installed"] and got["stand_in"] and got["musicgen"] == "MusicGen"
    assert int(got["transformers"].split(".")[0]) >= 5  # the newest, not capped below Colab's


def _sound(path: Path, seconds: float, rate: int | None = None) -> int:
    audio, got = sf.read(str(path), always_2d=True)
    assert rate in (None, got) and audio.shape[0] == round(seconds * got), (path, got, audio.shape)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3, f"{path} is silent"
    return got


def test_tiny_synthgen_prepares_encodes_trains_and_generates_in_the_venv(venv, tmp_path):
    python, _ = venv
    synthgen = python.parent / "synthgen"
    _run(synthgen, "prepare", "--source", "synthetic", "--tracks", "3", "--track-duration", "11", "--seed", "4",
         "--output", "data", cwd=tmp_path)
    for name in ("mix", "synth"):
        files = sorted((tmp_path / "data" / name).glob("*.wav"))
        assert len(files) == 3 and all(_sound(f, 11.0) == 32000 for f in files)
    out = _run(synthgen, "encode", "--source", "folder", "--root", "data", "--output", "codes", "--model-config",
               json.dumps(TINY_SYNTHGEN), "--window", "4", cwd=tmp_path)
    counts = json.loads((tmp_path / "codes" / "manifest.json").read_text())["counts"]
    assert counts == {"train": 4, "valid": 2}, out
    _run(synthgen, "train", "--model", "synthgen", "--data", "codes", "--output", "run", "--epochs", "1",
         "--steps-per-epoch", "2", "--batch-size", "2", "--max-valid-windows", "2", cwd=tmp_path)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 2 and 0 < metrics[-1]["valid_loss"] < 10, metrics
    write(tmp_path / "song.wav", tone(2.5, 44100, 2, freq=330.0), 44100)
    _run(synthgen, "generate", "song.wav", "--model", "run/last.pt", "--output", "out", "--top-k", "20",
         "--window", "4", "--description", "warm pad", cwd=tmp_path)
    _sound(tmp_path / "out" / "song" / "synth.wav", 2.5, 44100)


def test_melody_chroma_conditioner_separates_with_demucs_in_the_venv(venv):
    """audiocraft's ChromaStemConditioner (musicgen-melody) runs Demucs on the mix: here a small
    random HTDemucs stands in for the downloaded one, through demucs' own apply and audio code."""
    python, _ = venv
    got = _report(python, """
        import json, torch
        from synthgen_lib.models import audiocraft_compat
        import demucs.pretrained
        from demucs.htdemucs import HTDemucs
        from audiocraft.modules.conditioners import ChromaStemConditioner

        torch.manual_seed(0)
        small = HTDemucs(["drums", "bass", "other", "vocals"], channels=8, depth=2, t_layers=1, t_heads=2,
                         segment=2.0).eval()
        demucs.pretrained.get_model = lambda name: small
        cond = ChromaStemConditioner(output_dim=8, sample_rate=32000, n_chroma=12, radix2_exp=12, duration=2.0)
        wav = 0.5 * torch.sin(2 * torch.pi * 440 * torch.arange(64000) / 32000)[None, None]
        chroma = cond._compute_wav_embedding(wav, 32000)
        print(json.dumps({"shape": list(chroma.shape), "finite": bool(torch.isfinite(chroma).all()),
                          "energy": float(chroma.abs().sum())}))
    """)
    assert got["shape"][0] == 1 and got["shape"][2] == 12 and got["shape"][1] > 50, got
    assert got["finite"] and got["energy"] > 0, got


def test_t5_conditioner_encodes_descriptions_with_the_venvs_transformers(venv, tmp_path):
    """audiocraft's T5Conditioner (musicgen text) on a small T5 made here (random weights, its own
    sentencepiece vocabulary), loaded the way the hub's t5-base is: from a folder."""
    python, _ = venv
    got = _report(python, f"""
        import json, random, torch, sentencepiece, transformers
        from synthgen_lib.models import audiocraft_compat
        import audiocraft.modules.conditioners as conditioners

        folder = {str(tmp_path)!r}
        words = "warm analog pad bright lead pluck bass arpeggio detuned saw square wave chord stab soft hard".split()
        random.seed(0)
        with open(folder + "/corpus.txt", "w") as f:
            f.writelines(" ".join(random.choices(words, k=6)) + "\\n" for _ in range(2000))
        sentencepiece.SentencePieceTrainer.train(input=folder + "/corpus.txt", model_prefix=folder + "/spiece",
                                                 vocab_size=40, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                                 minloglevel=2)
        transformers.T5Tokenizer(vocab_file=folder + "/spiece.model", extra_ids=0).save_pretrained(folder)
        config = transformers.T5Config(vocab_size=40, d_model=768, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
        transformers.T5EncoderModel(config).save_pretrained(folder)
        for cls in (conditioners.T5Tokenizer, conditioners.T5EncoderModel):
            cls.from_pretrained = classmethod(lambda cls, name, load=cls.from_pretrained: load(folder))
        cond = conditioners.T5Conditioner("t5-base", output_dim=8, finetune=False, device="cpu")
        inputs = cond.tokenize(["warm analog pad", None])
        embeds, mask = cond(inputs)
        print(json.dumps({{"ids": inputs["input_ids"].tolist(), "mask": mask.tolist(), "shape": list(embeds.shape),
                          "norms": embeds.norm(dim=-1).sum(dim=1).tolist()}}))
    """)
    ids, mask = got["ids"], got["mask"]
    assert ids[0][-1] == 1 and all(0 < i < 40 for i in ids[0]), ids  # pieces of the description, then </s>
    assert mask == [[1] * len(ids[0]), [0] * len(ids[0])] and got["shape"] == [2, len(ids[0]), 8]
    assert got["norms"][0] > 0 and got["norms"][1] == 0  # the missing description is masked out


def test_description_embeddings_match_the_locks_transformers(venv):
    """describe.embed (all-MiniLM-L6-v2 through transformers) gives the venv's newer transformers
    the same vectors as the lock's."""
    from synthgen_lib.describe import embed

    texts = ["warm analog pad", "bright detuned saw lead with a long release"]
    python, _ = venv
    got = _report(python, f"""
        import json
        from synthgen_lib.describe import embed
        print(json.dumps(embed({texts!r}).tolist()))
    """)
    here = embed(texts)
    assert here is not None and np.allclose(np.array(got), here.numpy(), atol=1e-5)
