"""`transfer-tf evaluate`: its arguments, and the call of its job."""

import json
from pathlib import Path

from transfer_tf.cli.options import add_no_verify


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    evaluate = subparsers.add_parser("evaluate", parents=[common], help="metrics of a run on a folder of images")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("data_dir", help="folder with one sub-folder of images per class")
    evaluate.add_argument("--split", default="all", choices=("all", "train", "validation", "test"),
                          help="'all' images, or that part of the run's own split (default: all)")
    evaluate.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    add_no_verify(evaluate)
    evaluate.set_defaults(handler=run)
    return evaluate


def run(args):
    from transfer_tf.cli.jobs import evaluate_run
    from transfer_tf.evaluation.predictions import format_metrics
    from transfer_tf.model.saving import METRICS_FILE

    metrics = evaluate_run(
        args.run, args.data_dir, split=args.split, batch_size=args.batch_size, verify=not args.no_verify,
        verbose=not (args.quiet or args.json),  # stdout carries only the JSON
    )
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.quiet and not args.json:
        print(f"Wrote {Path(args.run) / METRICS_FILE}")
    return 0
