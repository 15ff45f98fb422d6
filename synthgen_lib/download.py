"""Downloads that cannot leave a half-file or a tampered file in place, and dataset paths that
cannot escape their folder.

:func:`fetch` streams a URL (or a Google Drive file, through ``gdown``) into a temporary file
next to the destination, checks that every promised byte arrived and — when given — that the
SHA-256 matches, and only then renames it into place. A failed or interrupted download leaves
nothing under the final name.

:func:`confined` resolves a path read from a manifest, a metadata file or an archive inside
its dataset folder and refuses absolute paths and ``..`` escapes.
"""
from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DatasetError, SynthGenError
from .fileio import atomic_path


class DownloadError(SynthGenError):
    """A download that failed, arrived incomplete, or does not match its checksum."""


_DRIVE_ID = re.compile(r"(?:/d/|id=|/folders/)([A-Za-z0-9_-]{20,})")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def drive_id(source: str) -> str | None:
    """The Google Drive file id in a share link, or ``source`` itself if it looks like an id."""
    match = _DRIVE_ID.search(source)
    if match:
        return match.group(1)
    if re.fullmatch(r"[A-Za-z0-9_-]{20,}", source):
        return source
    return None


def _check(dest: Path, tmp: Path, sha256: str | None, source: str) -> None:
    if sha256 is not None:
        got = sha256_of(tmp)
        if got.lower() != sha256.lower():
            raise DownloadError(f"{dest}: SHA-256 mismatch for {source} (expected {sha256[:12]}…, got "
                                f"{got[:12]}…) — the file is corrupt or not the one published; it was not used")


def _http(url: str, tmp: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            expected = response.headers.get("Content-Length")
            received = 0
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                f.write(block)
                received += len(block)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: download failed ({reason}) — check the link and your connection") from None
    if expected is not None and received != int(expected):
        raise DownloadError(f"{url}: download incomplete ({received} of {expected} bytes) — "
                            "nothing was kept; try again")


def _drive(file_id: str, tmp: Path) -> None:
    try:
        import gdown
    except ImportError:
        raise DownloadError("Google Drive downloads need gdown — pip install gdown") from None
    try:
        result = gdown.download(id=file_id, output=str(tmp), quiet=True)
    except Exception as exc:  # gdown raises FileURLRetrievalError and friends
        text = " ".join(str(exc).split())
        hint = ("the file is private or over its download quota — share it as 'Anyone with the link', "
                "or copy it to your own Drive and mount it")
        raise DownloadError(f"Google Drive file {file_id}: {hint} ({text[:120]})") from None
    if result is None or not tmp.is_file() or tmp.stat().st_size == 0:
        raise DownloadError(f"Google Drive file {file_id}: nothing was downloaded — check the id and sharing")


def fetch(source: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``source`` (an http(s) URL, or a Google Drive link or file id) to ``dest``.

    If ``dest`` already exists and matches ``sha256`` (or no checksum is given) it is kept and
    nothing is downloaded.

    Raises:
        DownloadError: the download failed or was incomplete, or the SHA-256 did not match;
            ``dest`` is then left as it was.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_of(dest).lower() == sha256.lower()):
        return dest
    with atomic_path(dest) as tmp:
        if source.startswith(("http://", "https://")) and not re.match(r"https?://[^/]*google\.com/", source):
            _http(source, tmp, timeout)
        elif (file_id := drive_id(source)) is not None:
            _drive(file_id, tmp)
        else:
            raise DownloadError(f"{source}: not a URL or a Google Drive link/id")
        _check(dest, tmp, sha256, source)
    return dest


def confined(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refusing absolute paths and anything resolving outside ``root``.

    Raises:
        DatasetError: naming the offending entry.
    """
    root_path = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute() or str(relative).startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", str(relative)):
        raise DatasetError(f"{root}: refusing absolute path {str(relative)!r} from a dataset file — "
                           "entries must be relative to the dataset folder")
    target = (root_path / rel).resolve()
    if target != root_path and root_path not in target.parents:
        raise DatasetError(f"{root}: refusing path {str(relative)!r} — it points outside the dataset folder")
    return target
