"""SynthGen: isolate, generate and re-voice the synthesizer stem of a music mix.

The task functions (``prepare`` now; ``train``, ``separate``, ``generate`` and ``evaluate`` as
the models land) are shared by the notebooks, the ``synthgen`` CLI and the tests.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .audio import SAMPLE_RATE, load_audio, save_audio  # noqa: E402
from .errors import AudioError, DatasetError, SynthGenError  # noqa: E402


def __getattr__(name: str):
    # Heavier entry points are imported on first use so `import synthgen_lib` stays fast.
    if name == "prepare":
        from .prepare import prepare

        return prepare
    raise AttributeError(f"module 'synthgen_lib' has no attribute {name!r}")


__all__ = ["SAMPLE_RATE", "AudioError", "DatasetError", "SynthGenError", "load_audio", "prepare",
           "save_audio"]
