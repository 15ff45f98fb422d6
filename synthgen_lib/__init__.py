"""SynthGen: isolate, generate and re-voice the synthesizer stem of a music mix.

The task functions (``prepare`` now; ``train``, ``separate``, ``generate`` and ``evaluate`` as
the models land) are shared by the notebooks, the ``synthgen`` CLI and the tests.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .audio import SAMPLE_RATE, load_audio, save_audio  # noqa: E402
from .errors import AudioError, DatasetError, SynthGenError  # noqa: E402
from .prepare import prepare  # noqa: E402  (the function; it shadows the module of the same name)


__all__ = ["SAMPLE_RATE", "AudioError", "DatasetError", "SynthGenError", "load_audio", "prepare",
           "save_audio"]
