"""Downloads against a server on 127.0.0.1 that the test starts (and gdown against a fake Google
Drive): never the network."""
from __future__ import annotations

import errno
import hashlib
import http.server
import io
import random
import re
import socket
import tarfile
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from synthgen_lib import archives
from synthgen_lib.archives import (ArchiveError, KnownDataset, dataset_source, download_dataset, tar_stream,
                                   unpack)
from synthgen_lib.download import DownloadError, confined, drive_id, fetch
from synthgen_lib.errors import DatasetError

from .conftest import tone, write

PAYLOAD = bytes(range(256)) * 400


class _Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` by path; records every request's Range header and the body bytes sent."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {"/model.pt": PAYLOAD, "/truncated": PAYLOAD}
        self.requests: list[tuple[str, str | None]] = []
        self.sent: Counter = Counter()
        self.cut_once: set[str] = set()  # send half the body once, then hang up
        self.ignore_range: set[str] = set()  # answer 200 with the whole file even to a Range request
        self.status: dict[str, int] = {}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        srv, path = self.server, self.path.split("?")[0]
        srv.requests.append((path, self.headers.get("Range")))
        if path in srv.status:
            self.send_error(srv.status[path])
            return
        if path not in srv.files:
            self.send_error(404)
            return
        body = srv.files[path]
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(ranged[1]) if ranged and path not in srv.ignore_range else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        chunk = body[start:]
        if path == "/truncated" or path in srv.cut_once:  # promises more than it sends, then hangs up
            srv.cut_once.discard(path)
            chunk = chunk[: len(chunk) // 3]
        try:
            for i in range(0, len(chunk), 1 << 16):
                self.wfile.write(chunk[i:i + (1 << 16)])
                srv.sent[path] += len(chunk[i:i + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# ---- archives built in the test -----------------------------------------------------------------

FILES = {"mix/a.wav": b"RIFF mix a", "synth/a.wav": b"RIFF synth a", "description/a.txt": b"warm pad"}


def _tar(files: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


ARCHIVES = {"data.zip": lambda f: _zip(f), "data.tar": lambda f: _tar(f, "w"), "data.tar.gz": lambda f: _tar(f)}


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---- fetch (single files) -----------------------------------------------------------------------

def test_download_lands_only_when_complete_and_checksum_matches(tmp_path, server):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dest = fetch(f"{server.url}/model.pt", tmp_path / "model.pt", sha256=good)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_truncated_download_is_not_used(tmp_path, server):
    with pytest.raises(DownloadError, match=r"incomplete \(34133 of 102400 bytes\)"):
        fetch(f"{server.url}/truncated", tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_is_refused_and_keeps_the_old_file(tmp_path, server):
    dest = tmp_path / "model.pt"
    dest.write_bytes(b"previous version")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(f"{server.url}/model.pt", dest, sha256="0" * 64)
    assert dest.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_drive_ids_are_read_from_links():
    fid = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    assert drive_id(f"https://drive.google.com/file/d/{fid}/view?usp=sharing") == fid
    assert drive_id(f"https://drive.google.com/open?id={fid}") == fid
    assert drive_id(f"https://drive.google.com/drive/folders/{fid}?usp=sharing") == fid
    assert drive_id(fid) == fid and drive_id("not an id") is None


@pytest.mark.parametrize("entry, message", [("../secrets.txt", "points outside"), ("/etc/passwd", "absolute path"),
                                            ("a/../../b", "points outside"), ("C:/x", "absolute path")])
def test_paths_from_dataset_files_stay_inside(tmp_path, entry, message):
    with pytest.raises(DatasetError, match=message):
        confined(tmp_path, entry)
    assert confined(tmp_path, "mix/a.wav") == (tmp_path / "mix" / "a.wav").resolve()


def test_slakh_metadata_cannot_point_outside_its_track(tmp_path):
    from synthgen_lib.data.slakh import SlakhSource

    track = tmp_path / "Track00001"
    track.mkdir()
    (track / "metadata.yaml").write_text(yaml.safe_dump({"audio_dir": "../../", "stems": {
        "S00": {"inst_class": "Synth Lead", "program_num": 81}}}))
    with pytest.raises(DatasetError, match="no Slakh track with a synth stem") as err:
        SlakhSource(tmp_path)
    assert "unsafe audio_dir" in str(err.value)


# ---- dataset archives ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ARCHIVES))
def test_archive_is_unpacked_into_the_folder(tmp_path, server, name):
    server.files[f"/{name}"] = ARCHIVES[name]({f"mydata/{k}": v for k, v in FILES.items()})
    dest = download_dataset(f"{server.url}/{name}", tmp_path / "ds", progress=False)
    assert dest == tmp_path / "ds"
    assert _listing(dest) == sorted([*FILES, ".synthgen-download.json"])  # the single top folder is dropped
    assert (dest / "synth" / "a.wav").read_bytes() == FILES["synth/a.wav"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no archive, partial or unpacking folder left
    assert dataset_source(dest) == "folder"


def test_rerun_is_skipped_and_another_source_is_refused(tmp_path, server):
    server.files["/data.zip"] = _zip(FILES)
    download_dataset(f"{server.url}/data.zip", tmp_path / "ds", progress=False)
    before = len(server.requests)
    assert download_dataset(f"{server.url}/data.zip", tmp_path / "ds", progress=False) == tmp_path / "ds"
    assert len(server.requests) == before  # the marker said it is done: nothing was fetched
    with pytest.raises(DownloadError, match=r"already exists and is not empty \(a download of http"):
        download_dataset(f"{server.url}/other.zip", tmp_path / "ds", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own file")
    with pytest.raises(DownloadError, match="already exists and is not empty — choose a new output folder"):
        download_dataset(f"{server.url}/data.zip", tmp_path / "mine", progress=False)
    assert _listing(tmp_path / "mine") == ["notes.txt"]


def test_interrupted_download_resumes_with_a_range_request(tmp_path, server):
    body = _tar({f"{i}.bin": bytes([i]) * 50_000 for i in range(8)}, "w")
    server.files["/big.tar"] = body
    server.cut_once.add("/big.tar")
    with pytest.raises(DownloadError, match=rf"download incomplete \(\d+ of {len(body)} bytes\) .* run the same"):
        download_dataset(f"{server.url}/big.tar", tmp_path / "ds", progress=False)
    partial = tmp_path / ".ds.download" / "archive"
    kept = partial.stat().st_size
    assert 0 < kept < len(body) and not (tmp_path / "ds").exists()
    download_dataset(f"{server.url}/big.tar", tmp_path / "ds", progress=False)
    assert server.requests[-1] == ("/big.tar", f"bytes={kept}-")
    assert server.sent["/big.tar"] == len(body)  # every byte was sent once: the first part was not sent again
    assert (tmp_path / "ds" / "7.bin").read_bytes() == bytes([7]) * 50_000


def test_a_server_that_ignores_the_range_is_followed_from_the_start(tmp_path, server):
    body = _tar({f"{i}.bin": random.Random(i).randbytes(50_000) for i in range(8)})
    server.files["/big.tar.gz"] = body
    server.cut_once.add("/big.tar.gz")
    server.ignore_range.add("/big.tar.gz")
    with pytest.raises(DownloadError, match="incomplete"):
        download_dataset(f"{server.url}/big.tar.gz", tmp_path / "ds", progress=False)
    download_dataset(f"{server.url}/big.tar.gz", tmp_path / "ds", progress=False)
    assert server.requests[-1][1] is not None  # it asked for the rest, got the whole file (200) ...
    assert [(tmp_path / "ds" / f"{i}.bin").read_bytes() for i in range(8)] == \
        [random.Random(i).randbytes(50_000) for i in range(8)]  # ... and wrote it from the start, not after the partial


@pytest.mark.parametrize("status, message", [
    (404, r"/gone.zip: not found \(HTTP 404\) — check the link"),
    (403, r"/private.zip: access denied \(HTTP 403\) — the file is not shared publicly"),
])
def test_http_errors_are_one_line(tmp_path, server, status, message):
    name = "/gone.zip" if status == 404 else "/private.zip"
    server.status[name] = status
    with pytest.raises(DownloadError, match=message) as err:
        download_dataset(server.url + name, tmp_path / "ds", progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "ds").exists()


def test_no_server_is_a_connection_message(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot reach the server \(connection refused\) — check the internet "
                                            r"connection and the address; run the same command again to resume"):
        download_dataset(f"http://127.0.0.1:{port}/data.zip", tmp_path / "ds", progress=False)


@pytest.mark.parametrize("body, message", [
    (_tar({f"set/{i}.bin": random.Random(i).randbytes(50_000) for i in range(4)})[:100_000], "the archive is damaged"),
    (b"<!DOCTYPE html><html><head><title>Sign in</title>", "it is a web page, not the file"),
])
def test_a_bad_archive_is_one_line_and_nothing_is_left(tmp_path, server, body, message):
    server.files["/data.tar.gz"] = body
    with pytest.raises(ArchiveError, match=message) as err:
        download_dataset(f"{server.url}/data.tar.gz", tmp_path / "ds", progress=False)
    assert str(err.value).startswith(f"{server.url}/data.tar.gz: ")
    assert str(err.value).endswith("the download was deleted; run the same command again to download it afresh")
    assert [p.name for p in tmp_path.iterdir()] == []  # no dataset folder, no half-unpacked folder, no archive


def test_checksum_is_checked_before_unpacking(tmp_path, server):
    server.files["/data.zip"] = _zip(FILES)
    with pytest.raises(DownloadError, match="SHA256 mismatch .* the download was deleted"):
        download_dataset(f"{server.url}/data.zip", tmp_path / "ds", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    good = hashlib.sha256(server.files["/data.zip"]).hexdigest()
    assert _listing(download_dataset(f"{server.url}/data.zip", tmp_path / "ds", good, progress=False))[0] == \
        ".synthgen-download.json"


@pytest.mark.parametrize("make, message", [
    (lambda: _tar({"ok/a.txt": b"a", "../evil.txt": b"x"}), "refusing archive member '../evil.txt': it points outside"),
    (lambda: _zip({"ok/a.txt": b"a", "../../evil.txt": b"x"}), "refusing archive member '../../evil.txt'"),
    (lambda: _zip({"/tmp/evil.txt": b"x"}), "refusing archive member '/tmp/evil.txt': an absolute path"),
    (lambda: _tar({"ok/a.txt": b"a"}, links={"ok/passwd": "/etc/passwd"}), "a link to '/etc/passwd'"),
])
def test_members_that_would_land_outside_are_refused(tmp_path, make, message):
    archive = tmp_path / "in" / "bad.archive"
    archive.parent.mkdir()
    archive.write_bytes(make())
    with pytest.raises(ArchiveError, match=re.escape(message) + ".* the file was left as it is"):
        download_dataset(str(archive), tmp_path / "out" / "ds", progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == [] and archive.is_file()  # the user's file is kept


def test_macos_metadata_is_skipped(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"d/mix/a.wav": b"x", "__MACOSX/d/._a.wav": b"junk", "d/mix/._a.wav": b"junk"}))
    assert unpack(archive, tmp_path / "out") == 1
    assert _listing(tmp_path / "out") == ["d/mix/a.wav"]


def test_a_full_disk_is_one_line(tmp_path, server, monkeypatch):
    server.files["/data.zip"] = _zip(FILES)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archives, "unpack", full)
    with pytest.raises(DownloadError, match=r"ds: the disk is full \(downloading http.*\) — free some space"):
        download_dataset(f"{server.url}/data.zip", tmp_path / "ds", progress=False)


def test_names_that_are_nothing_are_refused(tmp_path):
    with pytest.raises(DownloadError, match="not a dataset name .*musdb-sample.* or an existing archive file"):
        download_dataset("no/such/archive.zip", tmp_path / "ds", progress=False)
    with pytest.raises(DownloadError, match="musdb-hq is not Slakh"):
        download_dataset("musdb-hq", tmp_path / "ds", tracks=3, progress=False)


# ---- Google Drive through the real gdown, with Drive's answers faked ----------------------------

FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
QUOTA_PAGE = ('<html><body><p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
              "recently. Please try accessing the file again later. If the file you are trying to access is "
              "particularly large or is shared with many people, it may take up to 24 hours to be able to view or "
              "download the file.</p></body></html>")
SIGN_IN_PAGE = "<html><head><title>Google Drive - Sign in</title></head><body>Sign in</body></html>"


@pytest.fixture
def drive(monkeypatch, tmp_path):
    """Google Drive faked below requests: ``drive.answer(url) -> (status, headers, body)``."""
    import importlib

    import requests

    gdown_download = importlib.import_module("gdown.download")  # its cookie file moves out of $HOME
    monkeypatch.setattr(gdown_download, "DEFAULT_COOKIES_FILE", str(tmp_path / "cookies.txt"))

    class Drive:
        answer = None
        urls: list[str] = []

    def get(session, url, **kwargs):
        Drive.urls.append(url)
        answer = Drive.answer(url)
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        response = requests.Response()
        response.status_code, response.url, response.raw = status, url, io.BytesIO(body)
        response.headers.update(headers)
        return response

    monkeypatch.setattr(requests.Session, "get", get)
    return Drive


def test_a_drive_file_is_downloaded_and_unpacked(tmp_path, drive):
    body = _zip(FILES)
    drive.answer = lambda url: (200, {"Content-Type": "application/zip", "Content-Length": str(len(body)),
                                      "Content-Disposition": 'attachment; filename="data.zip"'}, body)
    dest = download_dataset(f"https://drive.google.com/file/d/{FILE_ID}/view?usp=sharing", tmp_path / "ds",
                            progress=False)
    assert _listing(dest) == sorted([*FILES, ".synthgen-download.json"])
    assert FILE_ID in drive.urls[0]


@pytest.mark.parametrize("answer, message", [
    (lambda url: (200, {"Content-Type": "text/html; charset=utf-8"}, QUOTA_PAGE.encode()),
     f"Google Drive file {FILE_ID}: over its download quota (too many downloads in the last 24 hours) — try again "
     "later, or add it to your own Drive ('Make a copy'), mount Drive and give the copy's path instead"),
    (lambda url: (200, {"Content-Type": "text/html; charset=utf-8"}, SIGN_IN_PAGE.encode()),
     f"Google Drive file {FILE_ID}: not shared publicly, over its download quota, or not there — check the link; "
     "set its sharing to 'Anyone with the link'"),
])
def test_drive_refusals_are_one_line(tmp_path, drive, answer, message):
    drive.answer = answer
    with pytest.raises(DownloadError) as err:
        download_dataset(FILE_ID, tmp_path / "ds", progress=False)
    assert str(err.value).startswith(message)


def test_drive_without_network_is_a_connection_message(tmp_path, drive):
    import requests

    drive.answer = lambda url: requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='drive.google.com', port=443): Max retries exceeded with url: /uc?id=x (Caused by "
        "NameResolutionError(\"Failed to resolve 'drive.google.com' ([Errno -3] Temporary failure in name "
        "resolution)\"))")
    with pytest.raises(DownloadError, match=f"Google Drive file {FILE_ID}: cannot reach the server \\(the host name "
                                            "cannot be resolved: no internet connection"):
        download_dataset(FILE_ID, tmp_path / "ds", progress=False)


def test_a_drive_folder_that_is_not_shared(tmp_path, drive):
    drive.answer = lambda url: (404, {"Content-Type": "text/html"}, b"<html>Not Found</html>")
    with pytest.raises(DownloadError, match=f"Google Drive folder {FILE_ID}: not found — check the link, or it is "
                                            "not shared: set its sharing to 'Anyone with the link'"):
        download_dataset(f"https://drive.google.com/drive/folders/{FILE_ID}?usp=sharing", tmp_path / "ds",
                         progress=False)
    assert "embeddedfolderview" in drive.urls[0]


def test_a_drive_folder_is_downloaded_and_its_archives_unpacked(tmp_path, monkeypatch):
    import gdown

    def download_folder(url, output, quiet, resume):  # what gdown writes: the folder's files under output
        assert FILE_ID in url and resume
        write = {"stems.zip": _zip({"mix/a.wav": b"m", "synth/a.wav": b"s"}), "notes.txt": b"read me"}
        for name, data in write.items():
            Path(output, name).write_bytes(data)
        return [f"{output}/{name}" for name in write]

    monkeypatch.setattr(gdown, "download_folder", download_folder)
    dest = download_dataset(f"https://drive.google.com/drive/folders/{FILE_ID}", tmp_path / "ds", progress=False)
    assert _listing(dest) == [".synthgen-download.json", "mix/a.wav", "notes.txt", "synth/a.wav"]
    assert dataset_source(dest) == "folder"


# ---- Slakh: a subset streamed from the archive --------------------------------------------------

def _stem(inst_class, program, drum=False):
    return {"inst_class": inst_class, "program_num": program, "is_drum": drum, "midi_program_name": inst_class,
            "audio_rendered": True}


SLAKH = {  # split, track, stems (in the order written), metadata last for Track00001 as in a real tar
    ("train", "Track00001"): {"S00": _stem("Piano", 0), "S01": _stem("Synth Lead", 81)},
    ("train", "Track00002"): {"S00": _stem("Guitar", 25), "S01": _stem("Bass", 33)},
    ("train", "Track00003"): {"S00": _stem("Synth Pad", 89), "S01": _stem("Drums", 128, True)},
    ("validation", "Track00004"): {"S00": _stem("Synth Lead", 80), "S01": _stem("Organ", 16)},
    ("omitted", "Track00005"): {"S00": _stem("Synth Lead", 80)},
}


def _flac(seconds=0.5, freq=220.0) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, 16000, 1, freq, 0.2).T, 16000, format="FLAC")
    return buf.getvalue()


def _slakh_tar(top: str = "slakh2100_flac_redux", splits: bool = True, filler: int = 0) -> bytes:
    files = {}
    for (split, track), stems in SLAKH.items():
        base = f"{top}/{split}/{track}" if splits else f"{top}/{track}"
        for i, key in enumerate(stems):
            files[f"{base}/stems/{key}.flac"] = _flac(freq=220.0 * (i + 1))
            files[f"{base}/MIDI/{key}.mid"] = b"MThd"
        files[f"{base}/mix.flac"] = _flac(freq=330.0)
        files[f"{base}/all_src.mid"] = b"MThd"
        files[f"{base}/metadata.yaml"] = yaml.safe_dump({"audio_dir": "stems", "stems": stems}).encode()
        if filler and track == "Track00004":
            files[f"{base}/stems/S99.flac"] = bytes(filler)  # a big file late in the archive
    return _tar(files, "w" if filler else "w:gz")


def test_slakh_subset_keeps_n_synth_tracks_and_only_their_synth_stems(tmp_path, server):
    from synthgen_lib.data.slakh import SlakhSource

    server.files["/slakh.tar.gz"] = _slakh_tar()
    dest = download_dataset(f"{server.url}/slakh.tar.gz", tmp_path / "slakh", tracks=2, synth_only=True,
                            progress=False)
    assert _listing(dest) == [".synthgen-download.json", "Track00001/metadata.yaml", "Track00001/mix.flac",
                              "Track00001/stems/S01.flac", "Track00003/metadata.yaml", "Track00003/mix.flac",
                              "Track00003/stems/S00.flac"]  # no MIDI, no guitar-only track, no other stems
    assert dataset_source(dest) == "slakh"
    source = SlakhSource(dest)
    assert sorted(t.name for t in source.tracks()) == ["Track00001", "Track00003"]
    assert source.info("Track00001").description == "synth lead (Synth Lead); with piano"  # piano is in the mix


def test_an_interrupted_slakh_stream_keeps_its_finished_tracks(tmp_path, server):
    server.files["/slakh.tar"] = _slakh_tar(filler=300_000)
    server.cut_once.add("/slakh.tar")
    with pytest.raises(DownloadError, match="interrupted after .* the finished tracks are kept; run the same command"):
        download_dataset(f"{server.url}/slakh.tar", tmp_path / "slakh", tracks=3, progress=False)
    kept = sorted(p.name for p in (tmp_path / ".slakh.unpacking").glob("Track*"))
    assert kept and not (tmp_path / "slakh").exists()
    dest = download_dataset(f"{server.url}/slakh.tar", tmp_path / "slakh", tracks=3, progress=False)
    assert sorted(p.name for p in dest.glob("Track*")) == ["Track00001", "Track00003", "Track00004"]
    assert set(kept) <= {"Track00001", "Track00003", "Track00004"}


def test_slakh_synth_only_keeps_the_split_folders(tmp_path):
    archive = tmp_path / "slakh.tar.gz"
    archive.write_bytes(_slakh_tar())
    dest = download_dataset(str(archive), tmp_path / "slakh", synth_only=True, progress=False)
    assert sorted(str(p.relative_to(dest)) for p in dest.glob("*/Track*")) == [
        "train/Track00001", "train/Track00003", "validation/Track00004"]  # omitted/ is never read
    assert archive.is_file()  # the user's archive is kept


def test_slakh_subset_stops_reading_the_archive(tmp_path):
    from synthgen_lib.data.slakh import unpack_slakh

    data = _slakh_tar(filler=4_000_000)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n=-1):
            block = super().read(n)
            Counting.read_bytes += len(block)
            return block

    with tar_stream(Counting(data)) as tar:
        assert unpack_slakh(tar, tmp_path / "out", tracks=2) == 2
    assert Counting.read_bytes < len(data) // 4  # the big file of Track00004 was never read


def test_babyslakh_layout_unpacks_to_a_slakh_root(tmp_path):
    archive = tmp_path / "babyslakh_16k.tar.gz"
    archive.write_bytes(_slakh_tar(top="babyslakh_16k", splits=False))
    dest = download_dataset(str(archive), tmp_path / "baby", progress=False)
    assert (dest / "Track00001" / "MIDI" / "S00.mid").is_file()  # a plain unpack keeps everything
    assert dataset_source(dest) == "slakh"


# ---- MUSDB --------------------------------------------------------------------------------------

def test_musdb_sample_url_is_musdb_own():
    import importlib.util

    config = Path(importlib.util.find_spec("musdb").origin).parent / "configs" / "mus.yaml"
    assert archives.DATASETS["musdb-sample"].url == yaml.safe_load(config.read_text())["sample-url"]


def test_musdb_download_goes_through_the_resumable_downloader(tmp_path, server, monkeypatch):
    from synthgen_lib.data.musdb_source import MusdbSource

    folder = tmp_path / "src" / "train" / "Zed - Song"
    for i, stem in enumerate(("mixture", "drums", "bass", "other", "vocals")):
        write(folder / f"{stem}.wav", tone(1.0, 44100, 2, 100.0 * (i + 1), 0.2), 44100)
    server.files["/musdb.zip"] = _zip({str(p.relative_to(tmp_path / "src")): p.read_bytes()
                                       for p in folder.iterdir()})
    monkeypatch.setitem(archives.DATASETS, "musdb-sample", KnownDataset(f"{server.url}/musdb.zip", "musdb", "test"))
    source = MusdbSource(tmp_path / "musdb", download=True)
    assert [t.name for t in source.tracks()] == ["Zed - Song"]
    assert server.requests == [("/musdb.zip", None)]


def test_musdb_without_a_folder_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    from synthgen_lib.cli import main

    monkeypatch.delenv("MUSDB_PATH", raising=False)
    assert main(["prepare", "--source", "musdb"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "None" not in err and "MUSDB_PATH has not been set" not in err
    assert err.startswith("synthgen: error: the musdb source needs a MUSDB18 folder (--root DIR holding train/ and "
                          "test/) — get it with 'synthgen download musdb-sample --output DIR'")
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "--source", "musdb", "--root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no MUSDB tracks found" in err and "synthgen download musdb-hq --output DIR" in err


# ---- the command line ---------------------------------------------------------------------------

def test_cli_download_prints_where_it_went_and_what_reads_it(tmp_path, server, capsys):
    from synthgen_lib.cli import main

    server.files["/data.tar.gz"] = _tar({f"mydata/{k}": v for k, v in FILES.items()})
    assert main(["download", f"{server.url}/data.tar.gz", "--output", str(tmp_path / "my data")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{server.url}/data.tar.gz is in {tmp_path / 'my data'}",
                   f"next: synthgen prepare --source folder --root '{tmp_path / 'my data'}'"]
    server.status["/gone.zip"] = 404
    assert main(["download", f"{server.url}/gone.zip", "--output", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == (f"synthgen: error: {server.url}/gone.zip: not found (HTTP 404) — check the "
                                       "link: the file may have moved or been deleted\n")


def test_a_slakh_subset_with_a_checksum_downloads_the_whole_archive_and_checks_it(tmp_path, server):
    import hashlib

    data = _slakh_tar()
    server.files["/slakh.tar.gz"] = data
    good = hashlib.sha256(data).hexdigest()
    with pytest.raises(DownloadError, match="(?i)sha-?256"):  # streamed, it could not have been checked at all
        download_dataset(f"{server.url}/slakh.tar.gz", tmp_path / "bad", "0" * 64, tracks=2, progress=False)
    dest = download_dataset(f"{server.url}/slakh.tar.gz", tmp_path / "slakh", good, tracks=2, synth_only=True,
                            progress=False)
    assert sorted(p.name for p in dest.glob("Track*")) == ["Track00001", "Track00003"]


def test_a_checksum_for_a_drive_folder_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="a SHA-256 checks one file, and this is a Drive folder"):
        download_dataset("https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz012345", tmp_path / "d",
                         "a" * 64, progress=False)
