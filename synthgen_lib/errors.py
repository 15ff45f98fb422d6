"""The exceptions SynthGen raises for problems a user can fix.

Every message is one line that names the file (or setting) and the problem, and says what to
do. The CLI prints it without a traceback and exits non-zero; notebooks catch
:class:`SynthGenError` and show the line.
"""
from __future__ import annotations

from pathlib import Path


class SynthGenError(Exception):
    """Base class: a problem with the user's input or settings, explained in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always a single line


class AudioError(SynthGenError):
    """An audio file that cannot be read, or audio that cannot be used."""

    def __init__(self, path: str | Path | None, problem: str, hint: str = ""):
        self.path = None if path is None else Path(path)
        self.problem = problem
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}{problem}" + (f" — {hint}" if hint else ""))


class DatasetError(SynthGenError):
    """A dataset folder that is missing, empty, or laid out differently than expected."""
