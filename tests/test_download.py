"""Downloads against a server on 127.0.0.1 that the test starts: never the network."""
from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from synthgen_lib.download import DownloadError, confined, drive_id, fetch
from synthgen_lib.errors import DatasetError

PAYLOAD = bytes(range(256)) * 400


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        body = PAYLOAD[: len(PAYLOAD) // 3] if self.path == "/truncated" else PAYLOAD
        self.wfile.write(body)  # /truncated promises more than it sends, then hangs up

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_lands_only_when_complete_and_checksum_matches(tmp_path, server):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dest = fetch(f"{server}/model.pt", tmp_path / "model.pt", sha256=good)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_truncated_download_is_not_used(tmp_path, server):
    with pytest.raises(DownloadError, match=r"incomplete \(34133 of 102400 bytes\)"):
        fetch(f"{server}/truncated", tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_is_refused_and_keeps_the_old_file(tmp_path, server):
    dest = tmp_path / "model.pt"
    dest.write_bytes(b"previous version")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(f"{server}/model.pt", dest, sha256="0" * 64)
    assert dest.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_drive_ids_are_read_from_links():
    fid = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    assert drive_id(f"https://drive.google.com/file/d/{fid}/view?usp=sharing") == fid
    assert drive_id(f"https://drive.google.com/open?id={fid}") == fid
    assert drive_id(fid) == fid and drive_id("not an id") is None


@pytest.mark.parametrize("entry, message", [("../secrets.txt", "points outside"), ("/etc/passwd", "absolute path"),
                                            ("a/../../b", "points outside"), ("C:/x", "absolute path")])
def test_paths_from_dataset_files_stay_inside(tmp_path, entry, message):
    with pytest.raises(DatasetError, match=message):
        confined(tmp_path, entry)
    assert confined(tmp_path, "mix/a.wav") == (tmp_path / "mix" / "a.wav").resolve()


def test_slakh_metadata_cannot_point_outside_its_track(tmp_path):
    import yaml

    from synthgen_lib.data.slakh import SlakhSource

    track = tmp_path / "Track00001"
    track.mkdir()
    (track / "metadata.yaml").write_text(yaml.safe_dump({"audio_dir": "../../", "stems": {
        "S00": {"inst_class": "Synth Lead", "program_num": 81}}}))
    with pytest.raises(DatasetError, match="no Slakh track with a synth stem") as err:
        SlakhSource(tmp_path)
    assert "unsafe audio_dir" in str(err.value)
