"""The ``synthgen`` command line: thin wrappers over the library's task functions.

Problems with the user's input are printed as one line (``synthgen: error: ...``) with exit
status 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import SynthGenError


def _add_prepare(sub) -> None:
    from .data import SOURCES

    p = sub.add_parser("prepare", help="list a dataset's tracks and windows; write it to the folder layout",
                       description="List a dataset's tracks, windows and train/valid split. With "
                       "--output, write it as mix/, synth/, description/ (renders the synthetic set).")
    p.add_argument("--source", choices=SOURCES, default="synthetic", help="data source (default: synthetic)")
    p.add_argument("--root", help="dataset folder (folder, musdb, slakh)")
    p.add_argument("--output", help="write the dataset here in the folder layout (resumes)")
    p.add_argument("--tracks", type=int, default=64, help="synthetic: number of tracks (default 64)")
    p.add_argument("--track-duration", type=float, default=30.0, help="synthetic: seconds per track (default 30)")
    p.add_argument("--seed", type=int, default=0, help="synthetic set and split seed (default 0)")
    p.add_argument("--window", type=float, default=10.0, help="window length in seconds (default 10)")
    p.add_argument("--hop", type=float, default=5.0, help="hop between windows in seconds (default 5)")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of tracks held out (default 0.1)")
    p.add_argument("--short", choices=("pad", "skip"), default="pad", help="tracks shorter than a window")
    p.add_argument("--target", default="other", help="musdb: stem used as the synth (default other)")
    p.add_argument("--download", action="store_true", help="musdb: fetch the 7-second previews")
    p.add_argument("--list", type=int, default=20, metavar="N", help="show the first N tracks (default 20)")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args) -> int:
    from .prepare import prepare

    report = prepare(args.source, args.root, args.output, num_tracks=args.tracks,
                     track_duration=args.track_duration, seed=args.seed, window=args.window,
                     hop=args.hop, valid_fraction=args.valid_fraction, short=args.short,
                     target=args.target, download=args.download)
    print(report.format(max_tracks=args.list))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``synthgen`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(prog="synthgen", description="Isolate, generate and re-voice "
                                     "the synth stem of a music mix.")
    parser.add_argument("--version", action="version", version=f"synthgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SynthGenError as exc:
        print(f"synthgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthgen: interrupted (finished files are kept; run again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
