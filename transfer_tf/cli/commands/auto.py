"""`transfer-tf auto`: its arguments, and the call of its job."""

import argparse
import json
from pathlib import Path

from transfer_tf.cli.commands.rank_bases import add_candidate_options
from transfer_tf.cli.options import verbosity
from transfer_tf.core.budget import parse_budget


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    auto = subparsers.add_parser(
        "auto", parents=[common],
        help="choose the base and the recipe for a folder within a time budget, train it, write its run folder")
    add_candidate_options(auto)
    auto.add_argument("--budget", type=_budget, default="10m",
                      help="the whole run's time, report included: 300, 90s, 5m, 1h (default: 10m)")
    auto.add_argument("--out", help="run folder to write (default: saved_models/DATA_DIR-auto)")
    auto.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    auto.add_argument("--validation-split", type=float, default=0.2,
                      help="fraction of each class the choice is made on (default: 0.2)")
    auto.add_argument("--test-split", type=float, default=0.0,
                      help="fraction of each class held out, read only after the choice (default: 0.0)")
    auto.add_argument("--seed", type=int, default=0, help="(default: 0)")
    auto.add_argument("--json", action="store_true", help="print auto.json at the end")
    auto.set_defaults(handler=run)
    return auto


def _budget(text):
    try:
        return parse_budget(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args):
    from transfer_tf.cli.jobs.auto_choice import auto, format_auto

    out = args.out or f"saved_models/{Path(args.data_dir).resolve().name}-auto"
    result = auto(args.data_dir, out, budget=args.budget, candidates=args.candidates, weights=args.weights,
                  validation_split=args.validation_split, test_split=args.test_split, seed=args.seed,
                  overwrite=args.overwrite, started=args.started, verbose=bool(verbosity(args)) and not args.json)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.quiet:
        print(format_auto(result))
    return 0
