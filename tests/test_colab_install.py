"""colab_install.py: the notebooks' installer gets the source from git, a folder or a zip, and
every failure is one line that stops the cell. pip and the import check are replaced here by a
recorder (a real install would change this environment); the different-torch test runs the real
thing in a fresh virtual environment."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from synthgen_lib import colab_install
from synthgen_lib.colab_install import InstallStopped, RestartNeeded, fetch_source, install

ROOT = Path(__file__).resolve().parents[1]


def _tree(folder: Path, text: str = "one") -> Path:
    """A stand-in repository: the installer, the requirements files and one marker file."""
    (folder / "synthgen_lib").mkdir(parents=True)
    (folder / "synthgen_lib" / "colab_install.py").write_text((ROOT / colab_install.MARKER).read_text())
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        (folder / name).write_text("")
    (folder / "version.txt").write_text(text)
    return folder


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A git repository with two commits, the first tagged v1."""
    folder = _tree(tmp_path / "origin")
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", "--allow-empty")
    _git(folder, "add", ".")
    _git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    _git(folder, "tag", "v1")
    (folder / "version.txt").write_text("two")
    _git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    return folder


@pytest.fixture
def pip(monkeypatch):
    """Records pip calls and answers the import check like a working install."""
    calls = []
    real = colab_install._run

    def fake(command, cwd=None):
        if command[1:3] == ["-m", "pip"]:
            calls.append(command[3:])
            return subprocess.CompletedProcess(command, 0, "", "")
        if command[1] == "-c" and "importlib.metadata" in command[2]:  # the torch the runtime has
            return subprocess.CompletedProcess(command, 0, "torch==2.8.0+cu126\ntorchaudio==2.8.0+cu126\n", "")
        if command[1] == "-c":
            return subprocess.CompletedProcess(command, 0, "2.8.0+cu126 0.1.0\n", "")
        return real(command, cwd)

    monkeypatch.setattr(colab_install, "_run", fake)
    return calls


def test_git_source_is_cloned_and_moved_to_the_ref(tmp_path, repo, pip):
    target = fetch_source(f"file://{repo}", tmp_path / "synthgen")
    assert (target / "version.txt").read_text() == "two"
    fetch_source(f"file://{repo}", target, ref="v1")
    assert (target / "version.txt").read_text() == "one"
    fetch_source(f"file://{repo}", target, ref="")  # REPO_REF emptied again: back to the default branch
    assert (target / "version.txt").read_text() == "two"


def test_a_bad_url_or_ref_stops_with_one_line(tmp_path, repo):
    with pytest.raises(InstallStopped) as stop:
        fetch_source(str(tmp_path / "nowhere.git"), tmp_path / "synthgen")
    message = str(stop.value)
    assert message.startswith("install stopped: git could not clone") and "REPO_URL" in message
    assert "\n" not in message and not (tmp_path / "synthgen").exists()
    with pytest.raises(InstallStopped, match="no tag, branch or commit 'v9'.*REPO_REF"):
        fetch_source(f"file://{repo}", tmp_path / "other", ref="v9")


def test_a_folder_or_a_zip_on_drive_is_copied(tmp_path, pip):
    folder = _tree(tmp_path / "drive" / "synthgen-copy")
    assert (fetch_source(str(folder), tmp_path / "a") / "version.txt").read_text() == "one"
    archive = tmp_path / "drive" / "synthgen-main.zip"
    with zipfile.ZipFile(archive, "w") as z:  # GitHub's zips wrap the tree in one folder
        for path in folder.rglob("*"):
            z.write(path, Path("synthgen-main") / path.relative_to(folder))
    line = install(str(archive), target=tmp_path / "b")
    assert (tmp_path / "b" / "version.txt").read_text() == "one"
    assert line.startswith("SynthGen 0.1.0 installed from") and line.endswith("no restart needed")
    assert [c[-2:] for c in pip] == [["-r", "requirements.txt"], ["-r", "requirements-nodeps.txt"], ["-e", "."]]
    assert "--no-deps" not in pip[0] and "--no-deps" in pip[1] and "--no-deps" in pip[2]
    # every step is constrained to the torch the runtime already has: nothing may replace Colab's
    assert all(c[c.index("-c") + 1] == str(tmp_path / "b" / "keep-torch.txt") for c in pip)
    assert (tmp_path / "b" / "keep-torch.txt").read_text().split() == ["torch==2.8.0+cu126", "torchaudio==2.8.0+cu126"]
    assert "beside torch 2.8.0+cu126" in line


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"not a zip"), "is not a .zip file"),
    (lambda p: p.mkdir(), "is not a copy of the SynthGen repository"),
])
def test_a_wrong_copy_is_refused(tmp_path, make, message):
    make(tmp_path / "copy")
    with pytest.raises(InstallStopped, match=message):
        fetch_source(str(tmp_path / "copy"), tmp_path / "synthgen")


def test_a_failing_pip_step_stops_with_its_last_error_line(tmp_path):
    folder = _tree(tmp_path / "src")
    (folder / "requirements.txt").write_text("./no-such-package.whl\n")  # fails at once, offline
    with pytest.raises(InstallStopped) as stop:
        install(str(folder), target=folder, python=sys.executable)
    message = str(stop.value)
    assert message.startswith("install stopped: pip could not install the requirements (")
    assert "no-such-package.whl" in message and "\n" not in message
    assert f"pip's whole output is in {folder.resolve() / 'install.log'}" in message
    assert "no-such-package.whl" in (folder / "install.log").read_text()


def test_the_line_taken_from_pip_says_what_failed_not_where_to_look():
    from synthgen_lib.colab_install import _last_line

    out = ("  error: subprocess-exited-with-error\n  × Building wheel for lameenc did not run successfully.\n"
           "ERROR: Failed building wheel for lameenc\nerror: failed-wheel-build-for-install\n"
           "╰─> lameenc\nhint: See above for details.\n")
    assert _last_line(out) == "ERROR: Failed building wheel for lameenc"
    assert _last_line("fatal: repository 'x' does not exist\n") == "fatal: repository 'x' does not exist"
    assert _last_line("") == "no message"


def test_a_failing_import_check_stops(tmp_path):
    folder = _tree(tmp_path / "src")
    fake = tmp_path / "python"  # pip "works", the imports do not
    fake.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo "ModuleNotFoundError: No module named '
                    "'audiocraft'\" >&2; exit 1; fi\nexit 0\n")
    fake.chmod(0o755)
    with pytest.raises(InstallStopped, match=r"import check failed \(ModuleNotFoundError: No module named 'audiocraft'\)"):
        install(str(folder), target=folder, python=str(fake))


def test_a_package_changed_under_the_kernel_asks_for_a_restart(tmp_path, pip, monkeypatch):
    folder = _tree(tmp_path / "src")
    monkeypatch.setattr(colab_install, "_loaded_versions", lambda: {"numpy": "1.0.0", "torch": "2.9.1"})
    monkeypatch.setattr(colab_install, "_version", lambda dist: {"numpy": "2.0.0", "torch": "2.9.1"}[dist])
    with pytest.raises(RestartNeeded) as stop:
        install(str(folder), target=folder)
    assert "restart needed (numpy changed" in str(stop.value) and "Runtime → Restart session" in str(stop.value)
    monkeypatch.setattr(colab_install, "_version", lambda dist: {"numpy": "1.0.0", "torch": "2.9.1"}[dist])
    assert install(str(folder), target=folder).endswith("no restart needed")


def test_the_script_form_refuses_wrong_arguments():
    proc = subprocess.run([sys.executable, str(ROOT / colab_install.MARKER)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("usage:")
