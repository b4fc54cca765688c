"""`transfer-tf predict`: its arguments, and the call of its job."""

import json
import sys

from transfer_tf.cli.options import add_no_verify


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    predict = subparsers.add_parser("predict", parents=[common], help="classify images")
    predict.add_argument("run", help="run folder")
    predict.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--top-k", type=int, default=3, help="classes per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.add_argument("--no-unknown", action="store_true",
                         help="print the best classes even below the run's 'unknown' threshold")
    add_no_verify(predict)
    predict.set_defaults(handler=run)
    return predict


def run(args):
    from transfer_tf.cli.jobs import format_predictions, predict_files
    from transfer_tf.data.splits import skipped_report

    predictions, skipped = predict_files(args.run, args.paths, top_k=args.top_k, verify=not args.no_verify,
                                        reject=not args.no_unknown)
    if args.json:
        print(json.dumps(predictions, indent=2))
        for line in skipped_report(skipped):
            print(line, file=sys.stderr)
    else:
        print(format_predictions(predictions, skipped))
    return 0
