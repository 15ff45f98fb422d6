"""Downloads that cannot leave a half-file or a tampered file in place, downloads that resume,
and dataset paths that cannot escape their folder.

:func:`fetch` streams a URL (or a Google Drive file, through ``gdown``) into a temporary file
next to the destination, checks that every promised byte arrived and — when given — that the
SHA-256 matches, and only then renames it into place. A failed or interrupted download leaves
nothing under the final name.

:func:`download_resumable` keeps a partial file across interruptions and continues it with an
HTTP Range request; :func:`download_drive` and :func:`download_drive_folder` do the same for
Google Drive through ``gdown``. Every failure is one :class:`DownloadError` line naming the
source and what to do: no network, not found, not shared, over the Drive quota, incomplete.
Dataset archives (fetch, check, unpack) are in :mod:`synthgen_lib.archives`.

:func:`confined` resolves a path read from a manifest, a metadata file or an archive inside
its dataset folder and refuses absolute paths and ``..`` escapes.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

from . import __version__
from .errors import DatasetError, SynthGenError
from .fileio import atomic_path, write_text_atomic


class DownloadError(SynthGenError):
    """A download that failed, arrived incomplete, or does not match its checksum."""


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DRIVE_ID = re.compile(r"(?:/d/|id=|/folders/)([A-Za-z0-9_-]{20,})")
_SHARE_HINT = ("set its sharing to 'Anyone with the link', or add it to your own Drive, mount Drive "
               "and give the file's path instead")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    return _digest(path, "sha256", chunk)


def _digest(path: str | Path, algorithm: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
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


def _is_http(source: str) -> bool:
    return source.startswith(("http://", "https://")) and not re.match(r"https?://[^/]*google\.com/", source)


# ---- what went wrong, in words ----------------------------------------------------------------

_HTTP_HINTS = {
    401: "access denied (HTTP 401) — the file needs a login: download it in a browser and give the file's path",
    403: "access denied (HTTP 403) — the file is not shared publicly, the link has expired, or the site wants "
         "a login (Zenodo: request access first, then use the link it gives you); or download it in a "
         "browser and give the file's path",
    404: "not found (HTTP 404) — check the link: the file may have moved or been deleted",
    410: "gone (HTTP 410) — the file was removed; look for a new link",
    429: "too many requests (HTTP 429) — the server is limiting downloads; wait a while and run again",
}


def _network_reason(exc: BaseException) -> str | None:
    """Why a server could not be reached, or ``None`` when ``exc`` is not a connection problem."""
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) else exc
    text = " ".join(str(reason).split())
    if isinstance(reason, socket.gaierror) or re.search(
            r"Name or service not known|name resolution|NameResolution|getaddrinfo|nodename nor servname", text):
        return "the host name cannot be resolved: no internet connection, or a typo in the address"
    if isinstance(reason, ConnectionRefusedError) or re.search(r"Connection refused|Errno 111", text):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)) or re.search(r"timed out|Timeout", text):
        return "no answer: the connection timed out"
    requests_error = type(exc).__module__.startswith("requests") and type(exc).__name__ in (
        "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "SSLError", "ProxyError")
    if isinstance(exc, (urllib.error.URLError, ConnectionError)) or requests_error:
        return text[:120]
    return None


def _failure(source: str, exc: BaseException) -> DownloadError:
    """One line for a failed request: HTTP status, no network, or what the library said."""
    code = getattr(exc, "code", None) if isinstance(exc, urllib.error.HTTPError) else \
        getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(code, int):
        hint = _HTTP_HINTS.get(code) or (f"server error (HTTP {code}) — try again later; run the same command "
                                         "again to resume" if code >= 500 else f"refused (HTTP {code})")
        return DownloadError(f"{source}: {hint}")
    reason = _network_reason(exc)
    if reason is not None:
        return DownloadError(f"{source}: cannot reach the server ({reason}) — check the internet connection "
                             "and the address; run the same command again to resume")
    text = " ".join(str(exc).split())
    return DownloadError(f"{source}: download failed ({text[:160]}) — check the link and your connection")


def _drive_failure(what: str, exc: BaseException) -> DownloadError:
    """One line for what gdown raised (its messages are matched as gdown 5 and 6 write them)."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "too many users have viewed or downloaded" in low:
        return DownloadError(f"{what}: over its download quota (too many downloads in the last 24 hours) — try "
                             "again later, or add it to your own Drive ('Make a copy'), mount Drive and give the "
                             "copy's path instead")
    if "more than 50 files" in low:
        return DownloadError(f"{what}: Google Drive folders download at most 50 files — share one zip or tar of "
                             "the dataset instead, or mount Drive and give the folder's path")
    if "failed to download the following files" in low:
        return DownloadError(f"{what}: some files of the folder could not be downloaded — run the same command "
                             "again to resume; if it repeats, they are not shared or over their quota "
                             f"({text[:120]})")
    if "status code 404" in low:
        return DownloadError(f"{what}: not found — check the link, or it is not shared: {_SHARE_HINT}")
    if any(s in low for s in ("cannot retrieve the public link", "change the permission", "anyone with the link",
                              "failed to retrieve folder contents")):
        return DownloadError(f"{what}: not shared publicly, over its download quota, or not there — check the "
                             f"link; {_SHARE_HINT} (if it is shared, the quota resets within 24 hours)")
    return _failure(what, exc)


# ---- transfers --------------------------------------------------------------------------------

def _open(url: str, timeout: float, headers: dict | None = None):
    # identity encoding: byte offsets must count the bytes written to disk
    headers = {"User-Agent": f"synthgen/{__version__}", "Accept-Encoding": "identity", **(headers or {})}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _size(n: int | None) -> str:
    return "?" if n is None else (f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB")


def _http(url: str, tmp: Path, timeout: float) -> None:
    try:
        with _open(url, timeout) as response, open(tmp, "wb") as f:
            expected = response.headers.get("Content-Length")
            received = 0
            while block := response.read(1 << 16):
                f.write(block)
                received += len(block)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        raise _failure(url, exc) from None
    except (http.client.HTTPException, ValueError) as exc:
        raise _failure(url, exc) from None
    if expected is not None and received != int(expected):
        raise DownloadError(f"{url}: download incomplete ({received} of {expected} bytes) — "
                            "nothing was kept; try again")


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(first byte, total)`` of a Content-Range header (``bytes 100-199/200``, ``bytes */200``)."""
    match = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", (value or "").strip())
    if not match:
        return None
    return int(match[1] or 0), None if match[2] == "*" else int(match[2])


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _copy_body(response, part: Path, offset: int, total: int | None, url: str, progress: bool) -> int:
    from tqdm.auto import tqdm

    received = offset
    with open(part, "ab" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc="downloading",
            disable=not progress) as bar:
        while True:
            try:
                block = response.read(1 << 20)
            except (OSError, http.client.HTTPException) as exc:  # the connection dropped mid-body
                raise DownloadError(f"{url}: the download was interrupted after {_size(received)} of {_size(total)} "
                                    f"({' '.join(str(exc).split()) or type(exc).__name__}) — run the same command "
                                    "again to resume") from None
            if not block:
                return received
            f.write(block)
            received += len(block)
            bar.update(len(block))


def download_resumable(url: str, part: str | Path, timeout: float = 60.0, progress: bool = False) -> Path:
    """Download ``url`` into ``part``, continuing from the bytes already there.

    A partial file is continued with an HTTP Range request (``If-Range`` makes a server whose
    file changed send it whole); a server that ignores the range and answers 200 is followed
    from the start. The source and validator are kept in ``part.json``.

    Raises:
        DownloadError: the server could not be reached or refused, or the body ended before the
            announced size (the bytes received are kept for the next call).
    """
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    state_path = part.with_name(part.name + ".json")
    state = _read_json(state_path)
    offset = part.stat().st_size if part.is_file() and state.get("url") == url else 0
    for _attempt in range(2):
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if state.get("validator"):
                headers["If-Range"] = state["validator"]
        try:
            response = _open(url, timeout, headers)
        except urllib.error.HTTPError as exc:
            span = _content_range(exc.headers.get("Content-Range")) if exc.code == 416 else None
            if exc.code == 416 and offset and span is not None and span[1] == offset:
                return part  # every byte is already here
            if exc.code == 416 and offset:
                offset = 0  # the file changed size: start over
                continue
            raise _failure(url, exc) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _failure(url, exc) from None
        with response:
            span = _content_range(response.headers.get("Content-Range"))
            if response.status == 206 and (span is None or span[0] != offset):
                offset = 0  # a range we did not ask for: start over without one
                continue
            if response.status == 206:
                total = span[1]
            else:  # 200: the whole file (the server ignored the range, or the file changed)
                offset = 0
                length = response.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
            etag = response.headers.get("ETag") or ""
            validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
            state = {"url": url, "validator": validator, "total": total}
            write_text_atomic(state_path, json.dumps(state))
            received = _copy_body(response, part, offset, total, url, progress)
        if total is not None and received > total:
            part.unlink()
            raise DownloadError(f"{url}: the server sent {received} bytes but announced {total} — the download "
                                "was deleted; run the same command again")
        if total is not None and received != total:
            raise DownloadError(f"{url}: download incomplete ({received} of {total} bytes) — the connection "
                                "closed early; run the same command again to resume")
        return part
    raise DownloadError(f"{url}: the server answers with a byte range that was not asked for — delete "
                        f"{part} and run again")


def _gdown():
    try:
        import gdown
    except ImportError:
        raise DownloadError("Google Drive downloads need gdown — pip install gdown") from None
    return gdown


def download_drive(file_id: str, output: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Download a Google Drive file to ``output``; with ``resume`` gdown keeps a partial file
    beside it and continues it next time.

    Raises:
        DownloadError: not shared, over its quota, not found, or no network.
    """
    output = Path(output)
    gdown = _gdown()
    what = f"Google Drive file {file_id}"
    try:
        result = gdown.download(id=file_id, output=str(output), quiet=not progress, resume=resume)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        raise _drive_failure(what, exc) from None
    except Exception as exc:  # gdown raises FileURLRetrievalError, DownloadError, requests' errors
        raise _drive_failure(what, exc) from None
    if result is None or not output.is_file() or output.stat().st_size == 0:  # gdown 4 returned None
        raise DownloadError(f"{what}: nothing was downloaded — check the id; or it is not shared publicly or is "
                            f"over its download quota: {_SHARE_HINT}")
    return output


def download_drive_folder(folder_id: str, output: str | Path, progress: bool = False) -> Path:
    """Download the files of a shared Google Drive folder into ``output`` (resumes; gdown lists
    at most 50 files per folder in its older versions).

    Raises:
        DownloadError: not shared, over its quota, not found, or no network.
    """
    gdown = _gdown()
    what = f"Google Drive folder {folder_id}"
    try:
        files = gdown.download_folder(url=f"https://drive.google.com/drive/folders/{folder_id}",
                                      output=str(output), quiet=not progress, resume=True)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        raise _drive_failure(what, exc) from None
    except Exception as exc:  # gdown's DownloadError and friends
        raise _drive_failure(what, exc) from None
    if not files:  # gdown 5 printed its error and returned None
        raise DownloadError(f"{what}: nothing was downloaded — it is empty, not shared publicly, or over its "
                            f"download quota: {_SHARE_HINT}")
    return Path(output)


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
        if _is_http(source):
            _http(source, tmp, timeout)
        elif (file_id := drive_id(source)) is not None:
            download_drive(file_id, tmp)
        else:
            raise DownloadError(f"{source}: not a URL or a Google Drive link/id")
        if sha256 is not None and (got := sha256_of(tmp)).lower() != sha256.lower():
            raise DownloadError(f"{dest}: SHA-256 mismatch for {source} (expected {sha256[:12]}…, got "
                                f"{got[:12]}…) — the file is corrupt or not the one published; it was not used")
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
