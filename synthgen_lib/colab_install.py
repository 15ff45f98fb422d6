"""Install SynthGen into the running Python (Colab) beside its own torch, or stop with one line.

Standard library only: the notebooks' install cell runs this file by path before anything of
SynthGen is installed (``runpy.run_path(...)["install"](...)``), and it also runs as a script
for another interpreter, ``<python> synthgen_lib/colab_install.py REPO_DIR`` (the
different-torch test installs a fresh virtual environment that way).

What it does, in order, each step stopping with one line (:class:`InstallStopped`) on failure:

1. puts the source in ``target``: a git clone (checked out at ``ref`` when one is given), or a
   copy of the repository from a folder or a ``.zip`` (e.g. on Google Drive, for users without
   GitHub access);
2. ``pip install -r requirements.txt``, then ``--no-deps -r requirements-nodeps.txt``, then
   ``--no-deps -e target`` (the loose requirements keep Colab's torch);
3. imports what the notebooks need in a fresh interpreter;
4. stops with :class:`RestartNeeded` when a package the running kernel had already imported
   changed version on disk (the kernel would mix old and new code).
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

STEPS = (("the requirements", ["-r", "requirements.txt"]),
         ("audiocraft (without its pins)", ["--no-deps", "-r", "requirements-nodeps.txt"]),
         ("SynthGen", ["--no-deps", "-e", "."]))
# audiocraft after our compat module, which stands in for an xformers that does not fit this torch
IMPORTS = ("import torch, torchaudio, synthgen_lib, synthgen_lib.notebook, synthgen_lib.models.audiocraft_compat, "
           "audiocraft.models")
MARKER = "synthgen_lib/colab_install.py"  # a folder holding this file is a SynthGen source tree


class InstallStopped(SystemExit):
    """One line saying what failed and what to do; stops "Run all" (SystemExit ends a notebook
    cell without a traceback worth reading, and a script with exit status 1)."""

    def __init__(self, message: str, prefix: str = "install stopped: "):
        super().__init__(prefix + message)


class RestartNeeded(InstallStopped):
    """Installed, but the running kernel holds an older copy of a package the install changed."""

    def __init__(self, message: str):
        super().__init__(message, prefix="")


# pip's closing lines that point elsewhere instead of saying what failed
_GENERIC = ("hint: see above", "note: this error originates", "error: subprocess-exited-with-error",
            "for help visit", "error: failed-wheel-build", "╰─>", "error: resolutionimpossible")


def _last_line(text: str) -> str:
    """The line of a tool's output that says what failed: its last ``ERROR:``/``error:`` line that
    is not one of pip's pointers to the lines above, else its last line."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("error", "fatal")) and
              not line.lower().startswith(_GENERIC)]
    line = (errors or lines or ["no message"])[-1]
    return line[:300]


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    # GIT_TERMINAL_PROMPT=0: a private or mistyped GitHub URL fails at once instead of asking for a password
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, stdin=subprocess.DEVNULL)


def _source_root(folder: Path) -> Path | None:
    """``folder`` or the one folder inside it that holds a SynthGen source tree (GitHub's zips
    wrap the tree in ``synthgen-main/``)."""
    if (folder / MARKER).is_file():
        return folder
    found = [p.parent.parent for p in folder.glob(f"*/{MARKER}")]
    return found[0] if len(found) == 1 else None


def fetch_source(source: str, target: str | Path, ref: str = "") -> Path:
    """Put the SynthGen source named by ``source`` (git URL, folder or ``.zip``) in ``target``.

    An existing ``target`` holding the source is kept (the notebooks run this again after a
    restart); with ``ref``, a git checkout is moved to that tag, branch or commit.
    """
    target = Path(target)
    local = Path(source).expanduser()
    if not (target / MARKER).is_file():
        if target.exists() and any(target.iterdir()):
            raise InstallStopped(f"{target} exists but holds no SynthGen source — remove it or choose another "
                                 "folder")
        if local.is_dir():
            root = _source_root(local)
            if root is None:
                raise InstallStopped(f"{local} is not a copy of the SynthGen repository (no {MARKER} in it)")
            shutil.copytree(root, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("outputs", ".git"))
        elif local.is_file():
            if not zipfile.is_zipfile(local):
                raise InstallStopped(f"{local} is not a .zip file — download the repository as a ZIP, or give "
                                     "the unpacked folder")
            with tempfile.TemporaryDirectory(dir=target.parent if target.parent.is_dir() else None) as tmp:
                try:
                    with zipfile.ZipFile(local) as archive:
                        archive.extractall(tmp)
                except (zipfile.BadZipFile, OSError) as exc:
                    raise InstallStopped(f"{local} could not be unpacked ({exc})") from None
                root = _source_root(Path(tmp))
                if root is None:
                    raise InstallStopped(f"{local} does not hold the SynthGen repository (no {MARKER} in it)")
                shutil.copytree(root, target, dirs_exist_ok=True)
        else:
            clone = _run(["git", "clone", "-q", "--depth", "1", source, str(target)])
            if clone.returncode:
                shutil.rmtree(target, ignore_errors=True)
                raise InstallStopped(f"git could not clone {source} ({_last_line(clone.stderr)}) — check REPO_URL, "
                                     "or set it to a copy of SynthGen on Drive (a folder or a .zip)")
    if (target / ".git").exists() and not local.exists():  # a clone: move it to the ref (or back to the default)
        fetched = _run(["git", "fetch", "-q", "--depth", "1", "origin", ref or "HEAD"], cwd=target)
        moved = fetched if fetched.returncode else _run(["git", "checkout", "-q", "FETCH_HEAD"], cwd=target)
        if moved.returncode and ref:
            raise InstallStopped(f"{source} has no tag, branch or commit {ref!r} ({_last_line(moved.stderr)}) — "
                                 "check REPO_REF, or leave it empty for the default branch")
    return target


def _keep_torch(python: str, repo: Path) -> list[str]:
    """pip's ``-c`` option with a constraints file pinning the torch and torchaudio ``python``
    already has (Colab's, built for its CUDA): no requirement may replace them. Empty when torch
    is not installed yet (a fresh machine gets the newest that fits)."""
    probe = _run([python, "-c", "import importlib.metadata as m\nfor d in ('torch', 'torchaudio'):\n    try:\n"
                  "        print(f'{d}=={m.version(d)}')\n    except m.PackageNotFoundError:\n        pass"])
    pins = [line for line in probe.stdout.split() if "==" in line] if probe.returncode == 0 else []
    if not pins:
        return []
    constraints = repo / "keep-torch.txt"
    constraints.write_text("\n".join(pins) + "\n")
    return ["-c", str(constraints)]


def _loaded_versions() -> dict[str, str]:
    """Version of the distribution behind each package this interpreter has imported."""
    owners = metadata.packages_distributions()
    versions = {}
    for name in list(sys.modules):
        if "." in name or name not in owners:
            continue
        for dist in owners[name]:
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return versions


def install(source: str, ref: str = "", target: str | Path = "synthgen", python: str = sys.executable) -> str:
    """Fetch (see :func:`fetch_source`) and install SynthGen for ``python``; return one line
    saying what was installed.

    Raises:
        InstallStopped: naming the step that failed and its last error line.
        RestartNeeded: installed, and the running kernel must be restarted.
    """
    repo = fetch_source(source, target, ref).resolve()
    before = _loaded_versions() if python == sys.executable else {}
    keep = _keep_torch(python, repo)
    log = repo / "install.log"
    for what, args in STEPS:
        step = _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *keep, *args], cwd=repo)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"$ pip install {' '.join(args)}\n{step.stdout}{step.stderr}\n")
        if step.returncode:
            raise InstallStopped(f"pip could not install {what} ({_last_line(step.stderr or step.stdout)}; "
                                 f"pip's whole output is in {log})")
    check = _run([python, "-c", f"{IMPORTS}; print(torch.__version__, synthgen_lib.__version__)"], cwd=repo.parent)
    if check.returncode:
        raise InstallStopped(f"installed, but the import check failed ({_last_line(check.stderr)})")
    torch_version, version = check.stdout.split()[-2:]
    if python == sys.executable and str(repo) not in sys.path:
        sys.path.insert(0, str(repo))  # the running kernel has not read the editable install's .pth
    done = f"SynthGen {version} installed from {source} beside torch {torch_version}"
    if ref and not (repo / ".git").exists():
        done += f" (REPO_REF {ref!r} not used: a copy has no history)"
    changed = sorted(d for d, v in before.items() if _version(d) not in (v, None))
    if changed:
        raise RestartNeeded(f"{done}; restart needed ({', '.join(changed)} changed under the running kernel): "
                            "Runtime → Restart session, then run the notebook again (the install is kept)")
    return f"{done}; no restart needed"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """``python colab_install.py REPO_DIR [REF]``: install that source for this interpreter."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python colab_install.py REPO_DIR [REF]", file=sys.stderr)
        return 2
    print(install(args[0], args[1] if len(args) > 1 else "", target=args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
