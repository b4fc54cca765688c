"""`transfer-tf rank-bases`: its arguments, and the call of the ranking."""

import argparse
import json

from transfer_tf.cli.options import verbosity
from transfer_tf.training.settings import parse_weights


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    rank = subparsers.add_parser(
        "rank-bases", parents=[common],
        help="which pretrained base suits a folder: each frozen base run once, scored by LogME and a linear probe")
    add_candidate_options(rank)
    rank.add_argument("--ranked-by", default="logme", choices=("logme", "linear_probe"), help="(default: logme)")
    rank.add_argument("--no-linear-probe", action="store_true", help="LogME only (quicker)")
    rank.add_argument("--validation-split", type=float, default=0.2,
                      help="the split `train` would make; only its training images are read (default: 0.2)")
    rank.add_argument("--test-split", type=float, default=0.0, help="(default: 0.0)")
    rank.add_argument("--seed", type=int, default=0, help="(default: 0)")
    rank.add_argument("--json", action="store_true", help="print JSON")
    rank.set_defaults(handler=run)
    return rank


def add_candidate_options(parser):
    """The folder, the candidate bases and their weights: what `rank-bases` and `auto` share."""
    parser.add_argument("data_dir", help="one sub-folder of images per class, or train/, validation/, test/ folders")
    parser.add_argument("--candidates", type=parse_candidates, metavar="BACKBONE:SIZE,...",
                        help="bases to score, e.g. efficientnet_lite0:224,efficientnet_lite0:128 (default: every "
                             "backbone with ImageNet weights here, at its own size and about 4/7 of it)")
    parser.add_argument("--weights", default="imagenet", type=parse_weights,
                        help="'imagenet', 'none' or a weights file (default: imagenet)")


def parse_candidates(text):
    pairs = []
    for item in text.split(","):
        backbone, _, size = item.strip().partition(":")
        if not backbone or not size.isdigit():
            raise argparse.ArgumentTypeError(f"--candidates takes BACKBONE:SIZE pairs separated by commas, such as "
                             f"efficientnet_lite0:224,efficientnet_lite0:128. Received: {item.strip()!r}")
        pairs.append((backbone, int(size)))
    return pairs


def run(args):
    from transfer_tf.methods.base_ranking import format_ranking, rank_bases

    rows = rank_bases(args.data_dir, candidates=args.candidates, weights=args.weights,
                      validation_split=args.validation_split, test_split=args.test_split, seed=args.seed,
                      ranked_by=args.ranked_by, linear_probe=not args.no_linear_probe,
                      verbose=bool(verbosity(args)) and not args.json)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        print(format_ranking(rows))
    return 0
