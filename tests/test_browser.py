"""The Generate notebook in a real browser: JupyterLab + headless Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 (random port and token, throwaway JUPYTER_* folders), opens
04_generate.ipynb in Debian's Chromium (never a downloaded browser), runs all cells, clicks
Generate, and checks that the widget output gets <audio> elements of the example's duration
that the browser has loaded. Every request that does not go to the local server is blocked.
The server is stopped by its PID whatever happens. A screenshot is saved (and copied to
$SYNTHGEN_SCREENSHOT when set, which is how the README's picture is made).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # every host but the local server resolves to nothing: no request leaves the machine
                 # (Playwright's page.route would also do it, but it stops JupyterLab starting a kernel)
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:  # 500 while the kernel starts: keep polling
        return exc.code, b""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


@pytest.fixture
def lab(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "04_generate.ipynb", work)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "IPYTHONDIR": str(tmp_path / "ipy"),
           "OMP_NUM_THREADS": "1"}
    # no "get Jupyter news?" popup over the panel (and no request for it)
    settings = tmp_path / "cfg" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # the kernel needs ipywidgets' lab extension, which lives in the real data dirs of the install
    env["JUPYTER_PATH"] = os.pathsep.join([str(Path(sys.prefix) / "share" / "jupyter")])
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            env=env, stdout=open(tmp_path / "lab.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while _get(f"{base}/api/status?token={token}")[0] != 200:
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "lab.log").read_text()[-2000:]
            time.sleep(0.5)
        yield base, token, work
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_kernel_idle(base: str, token: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        code, body = _get(f"{base}/api/kernels?token={token}")
        if code == 200:
            kernels = json.loads(body)
            if kernels and all(k["execution_state"] == "idle" and k.get("connections", 1) > 0 for k in kernels):
                return
        time.sleep(0.5)
    raise AssertionError("the notebook's kernel never became idle")


RMS_OF_PLAYERS = """async els => {
    const ctx = new OfflineAudioContext(1, 1, 44100);
    const out = [];
    for (const a of els) {  // decode what each player holds, as the browser would play it
        const data = await (await fetch(a.currentSrc || a.src)).arrayBuffer();
        const buffer = await ctx.decodeAudioData(data);
        const x = buffer.getChannelData(0);
        let sum = 0;
        for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
        out.push(Math.sqrt(sum / x.length));
    }
    return out;
}"""


def _generate_and_check(page, family: str) -> list[float]:
    """Click Generate, wait for the four players of a separation, check their length, and
    return the RMS of each player's decoded audio."""
    page.locator("button.widget-button", has_text="Generate").click()
    # busy while it runs (disabled, relabelled), back when done: the old players cannot pass for new ones
    page.wait_for_selector("button.widget-button[disabled]:has-text('Working')", timeout=30_000)
    page.wait_for_selector("button.widget-button:not([disabled]):has-text('Generate')", timeout=300_000)
    page.wait_for_function("document.querySelectorAll('.widget-output audio').length >= 4", timeout=60_000)
    page.wait_for_function("[...document.querySelectorAll('.widget-output audio')]"
                           ".every(a => a.readyState >= 1)", timeout=60_000)
    time.sleep(3)  # the results must stay, not flash and vanish on the next widget sync
    audio = page.eval_on_selector_all(".widget-output audio", "els => els.map(a => [a.duration, a.readyState])")
    assert len(audio) == 4, (family, audio)  # mix, synth, residual, reference
    assert all(abs(duration - 20.0) < 0.05 and ready >= 1 for duration, ready in audio), (family, audio)
    text = page.inner_text(".widget-output")
    assert "SI-SDR" in text and family in text and "over the mix" in text, text[:500]
    sources = page.eval_on_selector_all(".widget-output audio", "els => els.map(a => a.src.slice(0, 22))")
    assert sources == ["data:audio/mpeg;base64"] * 4, sources  # compressed previews, not WAV
    rms = page.eval_on_selector_all(".widget-output audio", RMS_OF_PLAYERS)
    assert len(rms) == 4 and all(r > 1e-3 for r in rms), (family, rms)  # every player holds sound
    return rms


def test_generate_panel_plays_stems_in_a_real_browser(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, work = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            local = (base, "ws://127.0.0.1", "data:", "blob:")
            outside: list[str] = []  # every request for another host, answered or blocked
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(local) else None)
            page.goto(f"{base}/lab/tree/04_generate.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            _wait_kernel_idle(base, token)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            page.locator("button.widget-button", has_text="Generate").wait_for(timeout=180_000)
            _wait_kernel_idle(base, token)
            first = _generate_and_check(page, "synthlstm-demo")
            shot = tmp_path / "generate_panel.png"  # the whole panel, controls to the last player
            page.set_viewport_size({"width": 1400, "height": 2400})
            panel = page.locator(".jp-OutputArea-output .widget-vbox").first
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            page.set_viewport_size({"width": 1400, "height": 1100})
            if os.environ.get("SYNTHGEN_SCREENSHOT"):
                shutil.copy(shot, os.environ["SYNTHGEN_SCREENSHOT"])
            # a second family, picked in the model menu as a user would
            page.locator(".widget-dropdown", has_text="model").locator("select").select_option("synthencoder-demo")
            second = _generate_and_check(page, "synthencoder-demo")
            assert second[1] != first[1]  # another model, another synth
            assert outside == [], f"requests for other hosts: {outside[:5]}"
        finally:
            browser.close()
    saved = {p.name.rsplit("-", 2)[-2] + "-demo" for p in (work / "SynthGen" / "generated").iterdir()}
    assert saved == {"synthlstm-demo", "synthencoder-demo"}  # each family's stems were saved
