"""`transfer-tf lr-find`: its arguments, and the call of its job."""

import json

from transfer_tf.cli.options import verbosity
from transfer_tf.core.settings_base import add_arguments
from transfer_tf.training.settings import DataSettings, ModelSettings, parse_blocks


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    lr_find = subparsers.add_parser("lr-find", parents=[common],
                                    help="sweep a phase's learning rate on a run's data or a folder; suggest one")
    lr_find.add_argument("source", metavar="RUN_OR_DATA",
                         help="a run folder (its data re-read) or a folder with one sub-folder per class")
    lr_find.add_argument("--phase", choices=("head", "fine_tune"), default="head", help="(default: head)")
    lr_find.add_argument("--unfreeze-blocks", type=parse_blocks, default=1,
                         help="blocks trained in the fine_tune phase: a number or 'all' (default: 1)")
    lr_find.add_argument("--steps", type=int, default=100, help="at most this many batches (default: 100)")
    lr_find.add_argument("--plot", metavar="PNG", help="write the sweep's plot there")
    lr_find.add_argument("--json", action="store_true", help="print the sweep as JSON")
    add_arguments(lr_find, ModelSettings, DataSettings)
    lr_find.set_defaults(handler=run)
    return lr_find


def run(args):
    from transfer_tf.cli.jobs import lr_find_run

    result = lr_find_run(
        args.source, phase=args.phase, unfreeze_blocks=args.unfreeze_blocks, steps=args.steps,
        plot=args.plot, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        verbose=verbosity(args, json_output=args.json),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    s = result.suggestions
    print(f"Suggested learning rate ({args.phase}): {s['valley']:.2g} (valley; minimum/10 "
          f"{s['minimum']:.2g}, steepest {s['steep']:.2g}), from {len(result.losses)} batches.")
    if args.plot:
        print(f"Wrote {args.plot}")
    return 0
