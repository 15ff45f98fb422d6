# The two set-up commands of the README:
#   make demo   installs SynthGen (pinned) and runs the main job on the embedded default
#   make test   installs SynthGen and its test tools (pinned) and runs the whole test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip --disable-pip-version-check
OUT ?= outputs

.PHONY: install install-test demo test

install:
	@command -v ffprobe >/dev/null || { echo "installing FFmpeg (musdb needs ffprobe)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; }
	$(PIP) install -q -r requirements-lock.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --no-deps -e .

install-test: install
	$(PIP) install -q -r requirements-test.txt

demo: install
	synthgen prepare --source synthetic --tracks 8 --output $(OUT)/synthetic

test: install-test
	$(PYTHON) -m pytest -q
