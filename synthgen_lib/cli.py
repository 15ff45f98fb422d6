"""The ``synthgen`` command line: thin wrappers over the library's task functions.

Problems with the user's input are printed as one line (``synthgen: error: ...``) with exit
status 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import SynthGenError


def _finite(kind, zero_ok: bool, most: float | None = None):
    """argparse type: a finite number above 0 (or at least 0 with ``zero_ok``), and at most
    ``most`` when given, refused in one line otherwise (nan included)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):  # nan fails both
            bound = "of at least 0" if zero_ok else "greater than 0"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:g}, got {text}")
        return value
    return parse


def _positive(kind, most: float | None = None):
    """argparse type: a finite number > 0 (and at most ``most``)."""
    return _finite(kind, zero_ok=False, most=most)


def _text(text: str) -> str:
    """argparse type: text that is valid UTF-8 (arguments in another encoding arrive with
    undecodable bytes that no tokenizer or file can take)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("is not valid UTF-8 text (set your terminal to UTF-8, or retype it)") from None
    return text


MAX_TRACK_SECONDS = 3600.0  # one generated track is rendered in memory


def _at_least_zero(kind):
    """argparse type: a finite number >= 0."""
    return _finite(kind, zero_ok=True)


def _fraction(text: str, closed: bool = False) -> float:
    """argparse type: a number in [0, 1) (``closed``: in [0, 1])."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0 or (value == 1.0 and not closed):
        raise argparse.ArgumentTypeError(f"must be at least 0 and {'at most' if closed else 'below'} 1, got {text}")
    return value


def _share(text: str) -> float:
    """argparse type: a chance or share of examples, in [0, 1]."""
    return _fraction(text, closed=True)


def _add_prepare(sub) -> None:
    from .data import SOURCES
    from .data.synthetic import TWO_PARTS

    p = sub.add_parser("prepare", help="list a dataset's tracks and windows; write it to the folder layout",
                       description="List a dataset's tracks, windows and train/valid split. With "
                       "--output, write it as mix/, synth/, description/ (renders the synthetic set).")
    p.add_argument("--source", choices=SOURCES, default="synthetic", help="data source (default: synthetic)")
    p.add_argument("--root", help="dataset folder (folder, musdb, slakh); scores: a folder of score files "
                   "(MIDI, MusicXML, Humdrum, ABC) or 'music21' (default)")
    p.add_argument("--output", help="write the dataset here in the folder layout (resumes)")
    p.add_argument("--tracks", type=_positive(int), default=64,
                   help="synthetic, sampled, scores: number of tracks (default 64)")
    p.add_argument("--track-duration", type=_positive(float, MAX_TRACK_SECONDS), default=30.0,
                   help="synthetic, sampled, scores: seconds per track (default 30, at most 3600)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated set and of the split (default 0)")
    p.add_argument("--window", type=_positive(float), default=10.0, help="window length in seconds (default 10)")
    p.add_argument("--hop", type=_positive(float), default=5.0, help="hop between windows in seconds (default 5)")
    p.add_argument("--valid-fraction", type=_fraction, default=0.1, help="share of tracks held out (default 0.1)")
    p.add_argument("--short", choices=("pad", "skip"), default="pad", help="tracks shorter than a window")
    p.add_argument("--target", default="other", help="musdb: stem used as the synth (default other)")
    p.add_argument("--download", action="store_true", help="musdb: fetch the 7-second previews")
    p.add_argument("--soundfont", nargs="+", help="sampled, scores: GM SoundFont(s) (.sf2) to play the tracks "
                   "with; scores draws one per part (default: the one installed in /usr/share/sounds/sf2)")
    p.add_argument("--exclude", help="scores: file of score paths or globs (relative to --root) never to read; "
                   "the music21 corpus's judging pieces are always excluded")
    p.add_argument("--pieces", choices=("all", "train", "valid"), default="all",
                   help="scores: only the pieces of this side of the split by piece (default all)")
    p.add_argument("--synth-voices", choices=("both", "soundfont", "procedural", "lmms", "all"), default="both",
                   help="scores: the synth parts' voices: SoundFont synth programs, the generator's procedural "
                   "voices, both (default), LMMS synth-engine presets (apt-get install lmms; held out with the "
                   "pieces), or all three")
    p.add_argument("--arrangement", choices=("ensemble", "electronic", "both"), default="ensemble",
                   help="scores: a synth among acoustic instruments (default), mostly synths with drums as in "
                   "an electronic production, or both")
    p.add_argument("--two-parts", type=_share, metavar="SHARE",
                   help="synthetic, sampled: share of tracks whose synth has two parts of different roles "
                   f"(default {TWO_PARTS:g}); 1 for a set that teaches text queries to tell parts apart")
    p.add_argument("--production", type=_share, default=0.0, metavar="SHARE",
                   help="synthetic, sampled, scores: share of tracks mixed and mastered by a random production chain "
                   "(per-stem EQ, compression, saturation, reverb, width; bus compressor, limiter, MP3), as real songs "
                   "are (default 0)")
    p.add_argument("--samples", nargs="+", metavar="DIR",
                   help="scores: folders of recorded instruments and drum kits (tonejs-instruments and Salamander "
                   "packages, Hydrogen kits; make sources installs them) that play half the accompaniment parts "
                   "and drums they have recordings for")
    p.add_argument("--workers", type=_positive(int), default=1, help="tracks written (and score files read) in parallel (default 1)")
    p.add_argument("--list", type=int, default=20, metavar="N", help="show the first N tracks (default 20)")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args) -> int:
    from .prepare import prepare

    report = prepare(args.source, args.root, args.output, num_tracks=args.tracks,
                     track_duration=args.track_duration, seed=args.seed, window=args.window,
                     hop=args.hop, valid_fraction=args.valid_fraction, short=args.short,
                     target=args.target, download=args.download, soundfont=args.soundfont,
                     exclude=args.exclude, pieces=args.pieces, synth_voices=args.synth_voices,
                     arrangement=args.arrangement, workers=args.workers, two_parts=args.two_parts,
                     production=args.production, samples=args.samples)
    print(report.format(max_tracks=args.list))
    return 0


def _add_download(sub) -> None:
    from .archives import DATASETS

    names = ", ".join(f"{name} ({d.about})" for name, d in DATASETS.items())
    p = sub.add_parser("download", help="download and unpack a dataset: MUSDB18, Slakh2100, or any archive's link",
                       description="Download a dataset archive (zip, tar, tar.gz) and unpack it into --output, then "
                       "print the 'prepare' command that reads it. Running it again resumes an interrupted "
                       f"download, or does nothing when it is complete. Named datasets: {names}.")
    p.add_argument("dataset", type=_text, metavar="DATASET", help=f"{', '.join(DATASETS)}, an http(s) URL, a Google "
                   "Drive file or folder link, or an archive on disk")
    p.add_argument("--output", required=True, help="the dataset folder to create (missing or empty)")
    p.add_argument("--url", type=_text, help="named datasets: download from this link instead (a mirror, the link "
                   "Zenodo gives after an access request, a Drive copy)")
    p.add_argument("--sha256", help="the archive's expected SHA-256 (checked before unpacking)")
    p.add_argument("--tracks", type=_positive(int), help="Slakh: keep the first N tracks with a synth stem and stop "
                   "downloading there")
    p.add_argument("--synth-only", action="store_true", help="Slakh: keep only the synth lead/pad stems (with the "
                   "mix and metadata)")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive next to --output")
    p.set_defaults(func=_run_download)


def _run_download(args) -> int:
    import shlex

    from .archives import dataset_source, download_dataset

    root = download_dataset(args.dataset, args.output, args.sha256, url=args.url, tracks=args.tracks,
                            synth_only=args.synth_only, keep_archive=args.keep_archive)
    kind = dataset_source(root)
    print(f"{args.dataset} is in {root}")
    if kind:
        print(f"next: synthgen prepare --source {kind} --root {shlex.quote(str(root))}")
    else:
        print("its layout is not one SynthGen reads directly (mix/ + synth/, MUSDB18 or Slakh) — look inside and "
              "point --root at the dataset folder")
    return 0


def _add_train(sub) -> None:
    from .train import QUERY_LAYERS, TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model (resumes from OUTPUT/last.pt)",
                       description="Train SynthLSTM, SynthEncoder, SynthMatch or SynthGen; best.pt (by validation loss), "
                       "last.pt and metrics.jsonl go to --output. Running it again resumes. SynthGen trains "
                       "on the folder written by 'synthgen encode'.")
    p.add_argument("--model", choices=("lstm", "encoder", "synthmatch", "synthgen"), required=True,
                   help="model family")
    p.add_argument("--data", required=True, help="folder-layout dataset or 'synthetic'; for synthgen, "
                   "an encoded folder")
    p.add_argument("--output", required=True, help="run folder (checkpoints, metrics)")
    for name in ("epochs", "batch_size", "accumulate", "steps_per_epoch", "max_valid_windows"):
        p.add_argument("--" + name.replace("_", "-"), type=_positive(int), default=getattr(d, name))
    p.add_argument("--seed", type=int, default=d.seed)
    for name in ("warmup_steps", "save_every", "num_workers"):
        p.add_argument("--" + name.replace("_", "-"), type=_at_least_zero(int), default=getattr(d, name))
    for name in ("segment", "lr", "window", "hop"):
        p.add_argument("--" + name.replace("_", "-"), type=_positive(float), default=getattr(d, name))
    for name in ("weight_decay", "grad_clip", "gain_db", "eq_db"):  # 0 turns each off; a negative clip would flip the gradient
        p.add_argument("--" + name.replace("_", "-"), type=_at_least_zero(float), default=getattr(d, name))
    p.add_argument("--remix-prob", type=_share, default=d.remix_prob)
    p.add_argument("--valid-fraction", type=_fraction, default=d.valid_fraction)
    p.add_argument("--queries", type=_share, default=d.queries, metavar="SHARE",
                   help="lstm, encoder: share of examples that ask for one synth part by its description (0: no "
                   "text queries, the default); the model gets query layers")
    p.add_argument("--query-negatives", type=_share, default=d.query_negatives, metavar="SHARE",
                   help=f"share of those that ask for a part the track lacks, whose answer is silence (default "
                   f"{d.query_negatives:g})")
    p.add_argument("--query-mix", type=_share, default=d.query_mix, metavar="SHARE",
                   help=f"share of the others given a second synth from another track, either then asked for "
                   f"(default {d.query_mix:g})")
    p.add_argument("--query-mix-absent", type=_share, default=d.query_mix_absent, metavar="SHARE",
                   help="share of the queries for a part the track lacks given a second synth that lacks it "
                   f"too, the answer still silence (default {d.query_mix_absent:g})")
    p.add_argument("--query-only", action="store_true", help="train only the query layers of the --init model: "
                   "without a query it answers exactly as before")
    p.add_argument("--query-layers", choices=sorted(QUERY_LAYERS), default=d.query_layers,
                   help="with --query-only: all the query layers learn (the default), or the presence gate "
                   "alone (grown with --model-config '{\"query_gate\": true}'), which only sets how loud an "
                   "answer is")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--no-cache-audio", action="store_true", help="read every window from disk instead of "
                   "keeping the tracks in memory (datasets larger than memory)")
    p.add_argument("--model-config", default="{}", help='JSON overrides, e.g. \'{"hidden_size": 128}\'')
    p.add_argument("--init", metavar="NAME_OR_CHECKPOINT", help="start from this trained model (a bundled "
                   "name or a checkpoint) instead of random weights: fine-tune it on --data with a new schedule")
    p.add_argument("--restart", action="store_true", help="ignore last.pt and start over")
    p.add_argument("--stop-after", type=_positive(int), metavar="STEP", help="stop at this step, saving last.pt, "
                   "with the schedule of the whole run unchanged (running it again without this flag goes on)")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    import dataclasses

    from .train import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and k != "model"},
                      model=args.model, augment=not args.no_augment, cache_audio=not args.no_cache_audio)
    overrides = _json_object(args.model_config, "--model-config")
    result = train(args.data, args.output, cfg, overrides, resume=not args.restart, init=args.init,
                   stop_after_steps=args.stop_after)
    print(f"trained {result.step} steps ({result.epoch} epochs); best validation loss "
          f"{result.best_valid_loss:.4f}; best: {result.best}; last: {result.last}")
    return 0


def _add_encode(sub) -> None:
    from .data import SOURCES
    from .models import PRETRAINED_MUSICGEN

    p = sub.add_parser("encode", help="encode a dataset's windows to EnCodec tokens for SynthGen (resumes)",
                       description="Cut the tracks into windows and write the EnCodec tokens of synth and mix "
                       "(and the mix chroma) as shards + manifest.json into --output. Running it again "
                       "skips the finished shards.")
    p.add_argument("--source", choices=SOURCES, default="synthetic", help="data source (default: synthetic)")
    p.add_argument("--root", help="dataset folder (folder, musdb, slakh)")
    p.add_argument("--output", required=True, help="folder for the shards and manifest")
    p.add_argument("--base", default="tiny", help=f"SynthGen base: tiny, {', '.join(PRETRAINED_MUSICGEN)} or an "
                   "export folder (default tiny)")
    p.add_argument("--model-config", default="{}", help='JSON SynthGen settings, e.g. \'{"window": 10}\'')
    p.add_argument("--tracks", type=_positive(int), default=64, help="synthetic: number of tracks (default 64)")
    p.add_argument("--track-duration", type=_positive(float, MAX_TRACK_SECONDS), default=30.0,
                   help="synthetic: seconds per track")
    p.add_argument("--seed", type=int, default=0, help="split (and synthetic set) seed (default 0)")
    p.add_argument("--window", type=_positive(float), default=None, help="seconds per window (default: model's)")
    p.add_argument("--hop", type=_positive(float), default=5.0, help="hop between windows in seconds (default 5)")
    p.add_argument("--valid-fraction", type=_fraction, default=0.1, help="share of tracks held out (default 0.1)")
    p.add_argument("--shard-size", type=_positive(int), default=256, help="windows per shard (default 256)")
    p.add_argument("--batch-size", type=_positive(int), default=8, help="windows per forward pass (default 8)")
    p.set_defaults(func=_run_encode)


def _json_object(text: str, flag: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SynthGenError(f"{flag} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SynthGenError(f"{flag} must be a JSON object like '{{\"window\": 10}}', got {text}")
    return value


def _run_encode(args) -> int:
    from .data import open_source
    from .encode import encode

    source = open_source(args.source, args.root, num_tracks=args.tracks, seed=args.seed,
                         track_duration=args.track_duration)
    model = {"base": args.base, **_json_object(args.model_config, "--model-config")}
    report = encode(source, args.output, model, window=args.window, hop=args.hop,
                    valid_fraction=args.valid_fraction, seed=args.seed, shard_size=args.shard_size,
                    batch_size=args.batch_size)
    print(report.format())
    return 0


def _add_generate(sub) -> None:
    from .models import DEFAULT_MUSICGEN

    p = sub.add_parser("generate", help="generate a synth stem for audio files with SynthGen",
                       description="For each input X.ext write OUTPUT/X/synth.wav (with --remix also "
                       "removed.wav and remixed.wav: the mix with its synth replaced). Folders are walked.")
    p.add_argument("inputs", nargs="+", help="audio files or folders (the mixes)")
    p.add_argument("--model", default=DEFAULT_MUSICGEN,
                   help="SynthGen checkpoint, export folder, 'tiny' or a pretrained MusicGen name")
    p.add_argument("--description", type=_text, default=None, help='what the synth should sound like, e.g. "warm pad"')
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--remix", action="store_true", help="also replace the synth in the mix")
    p.add_argument("--separator", default="synthlstm-demo", help="--remix: model that removes the old synth")
    p.add_argument("--temperature", type=_positive(float), default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--top-k", type=_positive(int), default=250, help="sample among the k likeliest tokens (default 250)")
    p.add_argument("--top-p", type=_fraction, default=0.0, help="nucleus sampling threshold (0: off)")
    p.add_argument("--cfg-coef", type=_at_least_zero(float), default=3.0, help="classifier-free guidance (default 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--greedy", action="store_true", help="take the likeliest token instead of sampling")
    p.add_argument("--window", type=_positive(float), default=None, help="seconds per window (default: model's)")
    p.add_argument("--overlap", type=_at_least_zero(float), default=2.0,
                   help="seconds each window continues from (default 2)")
    p.add_argument("--primer", default=None, help="audio file with a synth line to continue (kept unchanged)")
    p.add_argument("--bits", type=int, choices=(16, 24, 32), default=24, help="output bit depth (default 24)")
    p.set_defaults(func=_run_generate)


def _run_generate(args) -> int:
    from .generate import generate_files

    for src, folder in generate_files(args.inputs, args.model, args.output, args.description,
                                      remix_synth=args.remix, separator=args.separator, bits=args.bits,
                                      primer=args.primer,
                                      temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                      cfg_coef=args.cfg_coef, seed=args.seed, use_sampling=not args.greedy,
                                      window=args.window, overlap=args.overlap, progress=True):
        print(f"{src} -> {folder}/synth.wav" + (", removed.wav, remixed.wav" if args.remix else ""))
    return 0


def _add_separate(sub) -> None:
    p = sub.add_parser("separate", help="isolate the synth stem of audio files",
                       description="For each input X.ext write OUTPUT/X/synth.wav and OUTPUT/X/residual.wav. "
                       "Folders are walked for audio files.")
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("--model", default="synthlstm-demo", help="bundled model name or checkpoint path")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--segment", type=_positive(float), default=10.0, help="seconds per segment (default 10)")
    p.add_argument("--overlap", type=_fraction, default=0.25, help="segment overlap fraction (default 0.25)")
    p.add_argument("--bits", type=int, choices=(16, 24, 32), default=24, help="output bit depth (default 24)")
    p.add_argument("--wiener", action="store_true", help="Wiener-style mask refinement (SynthLSTM only)")
    p.add_argument("--query", type=_text, default=None, metavar="DESCRIPTION",
                   help='keep only the synth part described, e.g. "warm pad" (the bundled SynthLSTM, and models '
                   'trained with --queries)')
    p.add_argument("--no-role-check", action="store_true",
                   help="keep the answer to --query as the model gives it; by default it fades where it does not "
                   "sound like the role described (pad, lead, arp, pluck, chords, bass), so a part the mix "
                   "lacks answers near silence")
    p.set_defaults(func=_run_separate)


def _run_separate(args) -> int:
    from .separate import separate_files

    failed, total = [], 0
    for done in separate_files(args.inputs, args.model, args.output, segment=args.segment,
                               overlap=args.overlap, bits=args.bits, wiener=args.wiener, query=args.query,
                               **({"role_check": False} if args.no_role_check else {})):
        total += 1
        if done.status == "failed":
            failed.append(done.input)
            print(f"synthgen: error: {done.note}", file=sys.stderr)
        elif done.status == "skipped":
            print(f"{done.input}: skipped ({done.note})")
        else:
            print(f"{done.input} -> {done.folder}/synth.wav, residual.wav" + (f" ({done.note})" if done.note else ""))
    if failed and total > 1:
        print(f"synthgen: {len(failed)} of {total} files failed (above); the others were written — fix them and "
              "run again: finished files are skipped", file=sys.stderr)
    return 2 if failed else 0


def _add_evaluate(sub) -> None:
    from .data import SOURCES

    p = sub.add_parser("evaluate", help="SI-SDR/SDR of models on a dataset's validation tracks")
    p.add_argument("--model", nargs="+", default=["synthlstm-demo", "synthencoder-demo"],
                   help="bundled model names or checkpoint paths")
    p.add_argument("--source", choices=SOURCES, default="folder")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--split", default="valid", choices=("valid", "train", "test", "all"))
    p.add_argument("--tracks", type=_positive(int), default=64, help="synthetic: number of tracks")
    p.add_argument("--seed", type=int, default=0, help="split (and synthetic set) seed")
    p.add_argument("--valid-fraction", type=_fraction, default=0.1)
    p.add_argument("--max-tracks", type=_positive(int), default=None)
    p.add_argument("--worst", type=int, default=0, metavar="N",
                   help="also list the N windows where the first model scores lowest")
    p.add_argument("--query-accuracy", action="store_true", help="also ask models trained with text queries for "
                   "each synth part of tracks with two or more (and for a part they lack), and score the answers")
    p.add_argument("--no-role-check", action="store_true", help="with --query-accuracy: score the answers as the "
                   "models give them, without separate's role check")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from .data import open_source
    from .evaluate import evaluate

    data = open_source(args.source, args.root, num_tracks=args.tracks, seed=args.seed)
    report = evaluate({m: m for m in args.model}, data, split=args.split, valid_fraction=args.valid_fraction,
                      seed=args.seed, max_tracks=args.max_tracks, progress=True)
    print(report.format())
    if args.worst > 0:
        print("\n" + report.format_worst(args.model[0], args.worst))
    if args.query_accuracy:
        from .evaluate import query_accuracy
        from .models import load_model

        asked = {m: model for m in args.model if "query" in getattr(model := load_model(m), "options", {})}
        if not asked:
            raise SynthGenError(f"--query-accuracy: none of {', '.join(args.model)} was trained with text queries — "
                                "give a model trained with --queries")
        print("\n" + query_accuracy(asked, data, split=args.split, valid_fraction=args.valid_fraction, seed=args.seed,
                                    max_tracks=args.max_tracks, role_check=not args.no_role_check,
                                    progress=True).format())
    return 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the bundled models")
    p.set_defaults(func=_run_models)


def _run_models(args) -> int:
    from .models import list_models

    for name, family, text, present in list_models():
        print(f"{name}\t{family}\t{text}" + ("" if present else " (not built: run 'make demo-models')"))
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="copy a trained model without its training state (optionally float16)")
    p.add_argument("checkpoint", help="a checkpoint, e.g. RUN/best.pt")
    p.add_argument("output", help="where to write the exported model")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from .models import export_model

    path = export_model(args.checkpoint, args.output, half=args.half)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB)" if size >= 1e5 else f"wrote {path} ({size / 1e3:.1f} kB)")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="separate the bundled example with the bundled models; write an HTML page",
                       description="The main job on the embedded default: separates the bundled example "
                       "mix with every bundled model and writes the stems and an HTML page with players "
                       "and spectrograms.")
    p.add_argument("--output", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--model", nargs="+", help="bundled model names or checkpoints (default: all bundled)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from .demo import run_demo

    page = run_demo(args.output, args.model)
    print(f"wrote the stems and {page}\nopen it in a browser to listen: file://{page}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (``synthgen: error: ...``), like every other error."""

    def error(self, message: str):
        self.exit(2, f"synthgen: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``synthgen`` argument parser with all subcommands."""
    parser = _Parser(prog="synthgen", description="Isolate, generate and re-voice "
                                     "the synth stem of a music mix.")
    parser.add_argument("--version", action="version", version=f"synthgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_download(sub)
    _add_prepare(sub)
    _add_encode(sub)
    _add_train(sub)
    _add_separate(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    _add_models(sub)
    _add_export(sub)
    _add_demo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except SynthGenError as exc:
        print(f"synthgen: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, a folder gone from a Drive mount...
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"synthgen: error: {where}{exc.strerror or exc} — check free space and permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthgen: interrupted (finished files are kept; run again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
