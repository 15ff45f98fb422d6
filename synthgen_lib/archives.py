"""Dataset archives: fetched, checked and unpacked into a dataset folder in one call.

:func:`download_dataset` takes a named dataset (:data:`DATASETS`: MUSDB18 previews or HQ,
Slakh2100, BabySlakh), an http(s) URL, a Google Drive file or folder link, or an archive already
on disk. The download resumes after an interruption (:func:`synthgen_lib.download.download_resumable`),
its size and checksum are checked, it is unpacked into a temporary folder that is renamed into
place only when complete, and a marker in the folder makes a rerun return at once.

:func:`unpack` writes zip and tar (plain, gz, bz2, xz) archives so that nothing lands outside
the destination: absolute paths, ``..`` escapes, links and device files are refused (naming the
member), macOS metadata (``__MACOSX/``, ``._*``) is skipped. Tar archives are read as a stream,
member by member, so a 100 GB archive is never held in memory and a reader can stop early
(:func:`synthgen_lib.data.slakh.unpack_slakh`).
"""
from __future__ import annotations

import http.client
import json
import lzma
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .download import (_DISK_FULL, DownloadError, _digest, _failure, _is_http, _open, _read_json, _size,
                       download_drive, download_drive_folder, download_resumable, drive_id)
from .errors import SynthGenError
from .fileio import write_text_atomic

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class ArchiveError(SynthGenError):
    """A file that is not an archive, is damaged, or holds a member that would land outside."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


# What a damaged or truncated archive raises (gzip and bz2 raise OSError without an errno).
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)


def is_corruption(exc: BaseException) -> bool:
    """True for the errors a damaged archive raises (not a full disk or a permission problem)."""
    return isinstance(exc, _CORRUPT) or (isinstance(exc, OSError) and exc.errno is None)


def archive_kind(path: str | Path) -> str | None:
    """``"zip"`` or ``"tar"`` (plain, gz, bz2 or xz) by the file's first bytes, ``None`` otherwise.
    A damaged archive still has its kind: unpacking it then fails with a clear message."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    try:  # an old (v7) tar without the "ustar" magic
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


def describe_non_archive(path: str | Path) -> str:
    """Why ``path`` is not an archive, in words a user can act on."""
    head = Path(path).read_bytes()[:512] if Path(path).is_file() else b""
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<head" in text:
        return ("it is a web page, not the file — the link opens a page (a login, an access request or a "
                "virus-scan warning); use the direct download link")
    if not head:
        return "it is empty"
    return f"it is not a zip or tar archive (it starts with {head[:16]!r})"


def is_junk(name: str) -> bool:
    """macOS metadata that archives made on a Mac carry: never dataset files."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p == "__MACOSX" for p in parts) or (bool(parts) and parts[-1].startswith("._"))


def member_target(dest: Path, name: str) -> Path:
    """Where member ``name`` lands under ``dest``; refuses absolute paths and escapes.

    Raises:
        ArchiveError: naming the member.
    """
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise ArchiveError(f"refusing archive member {name!r}: an absolute path — the archive is unsafe; "
                           "nothing from it was kept")
    root = dest.resolve()
    target = (root / posix).resolve()
    if target != root and root not in target.parents:
        raise ArchiveError(f"refusing archive member {name!r}: it points outside the destination — the "
                           "archive is unsafe; nothing from it was kept")
    return target


def _refuse_link(name: str, what: str) -> ArchiveError:
    return ArchiveError(f"refusing archive member {name!r}: a {what} — SynthGen unpacks only files and "
                        "folders; unpack this archive yourself if you trust it")


def extract_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
                       name: str | None = None) -> Path | None:
    """Write one member of ``tar`` (read as a stream) under ``dest`` as ``name`` (default: its
    own name); returns the file written, or ``None`` for a folder or skipped macOS metadata.

    Raises:
        ArchiveError: the member is a link, a device, or points outside ``dest``.
    """
    if member.issym() or member.islnk():
        raise _refuse_link(member.name, f"link to {member.linkname!r}")
    if not (member.isfile() or member.isdir()):
        raise _refuse_link(member.name, "device or special file")
    name = member.name if name is None else name
    target = member_target(dest, name)
    if member.isdir() or is_junk(name):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has contents
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return target


def tar_stream(fileobj: BinaryIO) -> tarfile.TarFile:
    """A tar (plain, gz, bz2 or xz) read strictly in order from ``fileobj`` (a file or a response)."""
    return tarfile.open(fileobj=fileobj, mode="r|*")


def _zip_members(zf: zipfile.ZipFile, dest: Path) -> list[tuple[zipfile.ZipInfo, Path]]:
    members = []
    for info in zf.infolist():  # check every member before writing any
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse_link(info.filename, "link")
        target = member_target(dest, info.filename)
        if not info.is_dir() and not is_junk(info.filename):
            members.append((info, target))
    return members


def unpack(archive: str | Path, dest: str | Path, progress: bool = False) -> int:
    """Unpack a zip or tar archive into ``dest`` (created); returns the number of files written.

    Raises:
        ArchiveError: not an archive, damaged, or with an unsafe member (what was written stays
            in ``dest``: unpack into a temporary folder and rename it when this returns).
    """
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    if kind is None:
        raise ArchiveError(describe_non_archive(archive), archive)
    from tqdm.auto import tqdm

    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tqdm(desc="unpacking", unit=" files", disable=not progress) as bar:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    for info, target in _zip_members(zf, dest):
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as source, open(target, "wb") as out:
                            shutil.copyfileobj(source, out, 1 << 20)
                        count += 1
                        bar.update()
            else:
                with open(archive, "rb") as f, tar_stream(f) as tar:
                    for member in tar:
                        if extract_tar_member(tar, member, dest) is not None:
                            count += 1
                            bar.update()
    except ArchiveError:
        raise
    except (*_CORRUPT, OSError, ValueError, NotImplementedError) as exc:
        if isinstance(exc, OSError) and not is_corruption(exc):
            raise  # a full disk or a permission problem: the caller explains it
        raise ArchiveError(f"the archive is damaged or cannot be read ({type(exc).__name__}: "
                           f"{str(exc)[:100] or 'truncated'})", archive) from None
    return count


_LAYOUT_PART = re.compile(r"train|test|valid|validation|omitted|mix|synth|description|Track\d+")


def dataset_root(folder: Path) -> Path:
    """The folder an archive was unpacked into, or the one folder inside it when that is all it
    holds (archives often wrap their contents in one) — unless that folder is part of a dataset
    layout (a MUSDB archive holding only ``train/``, a single Slakh track)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not _LAYOUT_PART.fullmatch(entries[0].name):
        return entries[0]
    return folder


def is_archive_name(name: str) -> bool:
    """True for file names with an archive suffix (``.zip``, ``.tar.gz``, ``.tgz`` ...)."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


# ---- datasets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class KnownDataset:
    """A dataset :func:`download_dataset` fetches by name."""

    url: str  # where the archive is published (a mirror or a Drive copy can replace it)
    source: str  # the ``prepare --source`` that reads the unpacked folder
    about: str
    size: int | None = None  # bytes of the published archive, when known
    md5: str | None = None  # the checksum the publisher lists, when known


# musdb's own preview set: the ``sample-url`` of musdb/configs/mus.yaml (a test keeps them equal).
MUSDB_SAMPLE_URL = "https://github.com/sigsep/sigsep-mus-db/releases/download/v0.4.0/MUSDB18-7-STEMS.zip"
DATASETS = {
    "musdb-sample": KnownDataset(MUSDB_SAMPLE_URL, "musdb", "MUSDB18, 7-second previews of all 150 songs"),
    "musdb-hq": KnownDataset("https://zenodo.org/records/3338373/files/musdb18hq.zip?download=1", "musdb",
                             "MUSDB18-HQ, 150 full songs as WAV stems, about 23 GB; Zenodo may ask you to "
                             "request access"),
    "slakh": KnownDataset("https://zenodo.org/records/4599666/files/slakh2100_flac_redux.tar.gz?download=1",
                          "slakh", "Slakh2100-redux, 1710 multitrack songs as FLAC, about 100 GB"),
    "babyslakh": KnownDataset("https://zenodo.org/records/4603870/files/babyslakh_16k.tar.gz?download=1",
                              "slakh", "BabySlakh, 20 Slakh songs at 16 kHz, 0.9 GB",
                              size=882818115, md5="311096dc2bde7d61c97e930edbfc7f78"),
}
MARKER = ".synthgen-download.json"  # in a finished dataset folder: what it came from
_PARTIAL = ".synthgen-partial.json"  # in the unpacking folder: the settings of the run that started it


def dataset_source(root: str | Path) -> str | None:
    """The ``prepare --source`` that reads the dataset folder ``root`` (``folder``, ``slakh`` or
    ``musdb``), or ``None`` when its layout is none of these."""
    root = Path(root)
    if (root / "mix").is_dir() and (root / "synth").is_dir():
        return "folder"
    if next(root.glob("Track*/metadata.yaml"), None) or next(root.glob("*/Track*/metadata.yaml"), None):
        return "slakh"
    if any(next((root / s).glob(p), None) for s in ("train", "test") for p in ("*.stem.mp4", "*/mixture.wav")):
        return "musdb"
    return None


def download_dataset(source: str, dest: str | Path, sha256: str | None = None, *, url: str | None = None,
                     tracks: int | None = None, synth_only: bool = False, keep_archive: bool = False,
                     timeout: float = 60.0, progress: bool = True) -> Path:
    """Download and unpack a dataset into the folder ``dest``; returns ``dest``.

    Running it again with the same arguments returns at once (``dest`` holds a marker); after
    an interruption it resumes the download. An archive holding a single folder is unpacked
    without it, so ``dest`` is the dataset's root (:func:`dataset_source` names the
    ``--source`` that reads it).

    Args:
        source: a name in :data:`DATASETS` (``musdb-sample``, ``musdb-hq``, ``slakh``,
            ``babyslakh``), an http(s) URL of a zip/tar/tar.gz archive, a Google Drive file link
            or id, a Drive folder link (its files are downloaded and the archives among them
            unpacked), or the path of an archive already on disk (never deleted).
        dest: the dataset folder to create (missing or empty).
        sha256: the archive's expected SHA-256.
        url: for a named dataset, download from here instead (a mirror, the link Zenodo gives
            after an access request, or a Drive copy).
        tracks: Slakh archives: keep the first ``tracks`` tracks that have a synth stem and
            stop reading. They land straight under ``dest`` (no split folders, so
            ``--valid-fraction`` holds some out). From an http(s) URL the archive is streamed,
            never stored: an interruption keeps the finished tracks and restarts the stream.
        synth_only: Slakh archives: keep the mix, the metadata and only the synth lead/pad stems.
        keep_archive: keep the downloaded archive next to ``dest`` instead of deleting it.
        timeout: seconds to wait for the server.
        progress: show progress bars.

    Raises:
        DownloadError: the download failed (no network, not found, not shared, over quota,
            incomplete, checksum mismatch, disk full) or ``dest`` holds something else.
        ArchiveError: the file is not an archive, is damaged, or holds an unsafe member.
    """
    dest = Path(dest).expanduser()
    known = DATASETS.get(source)
    link = url or (known.url if known else source)
    if (tracks is not None or synth_only) and known is not None and known.source != "slakh":
        raise DownloadError(f"{source}: tracks and synth_only select Slakh tracks, and {source} is not Slakh")
    if tracks is not None and tracks < 1:
        raise DownloadError(f"tracks must be at least 1, got {tracks}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise DownloadError(f"sha256 must be 64 hex digits, got {sha256!r}")
    settings = {"source": link, "tracks": tracks, "synth_only": synth_only}
    marker = _read_json(dest / MARKER)
    if marker and {k: marker.get(k) for k in settings} == settings:
        return dest
    if marker or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        earlier = f" (a download of {marker.get('source')})" if marker else ""
        raise DownloadError(f"{dest}: already exists and is not empty{earlier} — choose a new output folder, or "
                            "delete this one to replace it")
    work = dest.parent / f".{dest.name}.download"  # the partial archive, kept across interruptions
    staging = dest.parent / f".{dest.name}.unpacking"  # renamed to dest when complete
    try:
        root = _fetch_and_unpack(link, known, settings, work, staging, sha256, keep_archive, dest, timeout, progress)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise DownloadError(f"{dest}: the disk is full (downloading {link}) — free some space or choose an output "
                            "folder on a bigger disk; the partial download is kept: run again to resume") from None
    write_text_atomic(root / MARKER, json.dumps({**settings, "dataset": source if known else None}))
    if dest.is_dir():
        dest.rmdir()  # empty (checked above)
    root.replace(dest)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def _fetch_and_unpack(link: str, known: KnownDataset | None, settings: dict, work: Path, staging: Path,
                      sha256: str | None, keep_archive: bool, dest: Path, timeout: float, progress: bool) -> Path:
    """Fetch ``link`` and unpack it into ``staging``; returns the folder that becomes ``dest``."""
    tracks, synth_only = settings["tracks"], settings["synth_only"]
    subset = tracks is not None or synth_only
    if _read_json(staging / _PARTIAL) != settings:
        shutil.rmtree(staging, ignore_errors=True)  # left by a run with other settings
    staging.mkdir(parents=True, exist_ok=True)
    write_text_atomic(staging / _PARTIAL, json.dumps(settings))
    local = Path(link).expanduser()
    if local.exists():
        if not local.is_file():
            raise DownloadError(f"{link}: a folder, not an archive — use it directly as the dataset folder")
        archive = local
    elif _is_http(link) and subset and not (sha256 or (known and known.md5 and link == known.url)):
        archive = None  # streamed: only the selected tracks are ever stored (a checksum needs the whole file)
        count = _stream_slakh(link, staging, tracks, synth_only, timeout, progress)
    elif _is_http(link):
        archive = download_resumable(link, work / "archive", timeout, progress)
    elif "/folders/" in link and (folder_id := drive_id(link)) is not None:
        if sha256:
            raise DownloadError(f"{link}: a SHA-256 checks one file, and this is a Drive folder — share the archive "
                                "file itself, or leave the checksum empty")
        if subset:
            raise DownloadError(f"{link}: Slakh track selection reads one archive — share the .tar.gz file itself")
        download_drive_folder(folder_id, staging, progress)
        for inner in sorted(p for p in staging.rglob("*") if p.is_file() and is_archive_name(p.name)):
            try:  # an archive in the folder is unpacked where it lies
                unpack(inner, inner.parent, progress)
            except ArchiveError as exc:
                raise ArchiveError(f"{inner.name} in the folder: {exc.problem}", link) from None
            if not keep_archive:
                inner.unlink()
        (staging / _PARTIAL).unlink(missing_ok=True)
        return dataset_root(staging)
    elif (file_id := drive_id(link)) is not None:
        work.mkdir(parents=True, exist_ok=True)
        archive = download_drive(file_id, work / "archive", resume=True, progress=progress)
    else:
        raise DownloadError(f"{link}: not a dataset name ({', '.join(DATASETS)}), an http(s) URL, a Google Drive "
                            "link or id, or an existing archive file")
    if archive is not None:
        if not subset:  # a plain unpack starts clean; a Slakh selection continues
            shutil.rmtree(staging)
            staging.mkdir()
        count = _unpack_checked(archive, link, staging, sha256, known, tracks, synth_only, progress)
        if keep_archive and archive.parent == work:
            name = Path(link.split("?")[0]).name
            archive.replace(dest.parent / (name if is_archive_name(name) else f"{dest.name}.archive"))
    (staging / _PARTIAL).unlink(missing_ok=True)
    if subset and count == 0:
        raise DownloadError(f"{link}: no Slakh track with a synth stem in this archive — is it Slakh2100 or "
                            "BabySlakh (TrackNNNNN/metadata.yaml)?")
    return staging if subset else dataset_root(staging)


def _check(archive: Path, link: str, sha256: str | None, known: KnownDataset | None) -> None:
    official = known is not None and link == known.url
    size = archive.stat().st_size
    if official and known.size and size != known.size:
        raise DownloadError(f"{size} bytes instead of the published {known.size}")
    expected = [("sha256", sha256.lower())] if sha256 else []
    if official and known.md5:
        expected.append(("md5", known.md5))
    for algorithm, value in expected:
        if (got := _digest(archive, algorithm)) != value:
            raise DownloadError(f"{algorithm.upper()} mismatch (expected {value[:12]}…, got {got[:12]}…): the file "
                                "is damaged or not the one published")


def _unpack_checked(archive: Path, link: str, staging: Path, sha256: str | None, known: KnownDataset | None,
                    tracks: int | None, synth_only: bool, progress: bool) -> int:
    """Check and unpack ``archive``; a bad download is deleted (never a file the user gave)."""
    ours = archive.name == "archive" and archive.parent.name.endswith(".download")
    try:
        _check(archive, link, sha256, known)
        if tracks is None and not synth_only:
            return unpack(archive, staging, progress)
        from .data.slakh import unpack_slakh

        with open(archive, "rb") as f, tar_stream(f) as tar:
            return unpack_slakh(tar, staging, tracks, synth_only, progress)
    except (DownloadError, ArchiveError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        if ours:
            shutil.rmtree(archive.parent, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        problem = getattr(exc, "problem", None) or (str(exc) if isinstance(exc, DownloadError) else
                                                    f"the archive is damaged ({type(exc).__name__}: {exc})")
        fate = ("the download was deleted; run the same command again to download it afresh" if ours
                else "the file was left as it is")
        kind = DownloadError if isinstance(exc, DownloadError) else ArchiveError
        raise kind(f"{link}: {problem} — {fate}") from None


class _Counting:
    """A response wrapper that counts the bytes read (to tell a dropped stream from a bad archive)."""

    def __init__(self, response):
        self.response, self.count = response, 0

    def read(self, n: int = -1) -> bytes:
        block = self.response.read(n)
        self.count += len(block)
        return block


def _stream_slakh(link: str, staging: Path, tracks: int | None, synth_only: bool, timeout: float,
                  progress: bool) -> int:
    """Select Slakh tracks from an archive read straight off the network (never stored)."""
    from .data.slakh import unpack_slakh

    try:
        response = _open(link, timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _failure(link, exc) from None
    length = response.headers.get("Content-Length", "")
    body = _Counting(response)
    with response:
        try:
            with tar_stream(body) as tar:  # type: ignore[arg-type]
                return unpack_slakh(tar, staging, tracks, synth_only, progress)
        except ArchiveError as exc:
            raise ArchiveError(exc.problem, link) from None
        except (OSError, http.client.HTTPException, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
            if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
                raise
            if (length.isdigit() and body.count < int(length)) or not isinstance(exc, tarfile.TarError):
                raise DownloadError(f"{link}: the download was interrupted after {_size(body.count)} — the finished "
                                    "tracks are kept; run the same command again to continue") from None
            raise ArchiveError(f"the archive is damaged or not a tar ({type(exc).__name__}: {str(exc)[:100]})",
                               link) from None
