"""`transfer-tf compare`: its arguments, and the call of its job."""

import json
from pathlib import Path

from transfer_tf.cli.options import add_strategy, is_chief, strategy_of, verbosity
from transfer_tf.core.settings_base import add_arguments
from transfer_tf.training.settings import DataSettings, FineTuneSettings, ModelSettings, ScratchSettings


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    compare = subparsers.add_parser("compare", parents=[common],
                                    help="feature extraction vs fine-tuning vs from scratch on your data")
    compare.add_argument("data_dir", help="folder with one sub-folder of images per class")
    compare.add_argument("--out", help="folder for the table, JSON and plot "
                                       "(default: saved_models/compare-DATA_DIR-BACKBONE)")
    compare.add_argument("--overwrite", action="store_true", help="replace an earlier comparison at --out")
    add_arguments(compare, ModelSettings, DataSettings, FineTuneSettings, ScratchSettings)
    add_strategy(compare)
    compare.add_argument("--classical", choices=("logistic", "linear_svm", "rbf_svm", "knn", "none"),
                         default="logistic",
                         help="estimator of the classical row on the frozen features (default: logistic)")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    compare.set_defaults(handler=run)
    return compare


def run(args):
    from transfer_tf.cli.jobs import compare_run

    strategy = strategy_of(args)
    out = args.out or f"saved_models/compare-{Path(args.data_dir).resolve().name}-{args.backbone}"
    result, _ = compare_run(
        args.data_dir, out, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        training=FineTuneSettings.from_args(args), scratch_lr=ScratchSettings.from_args(args).learning_rate,
        classical=None if args.classical == "none" else args.classical, overwrite=args.overwrite,
        strategy=strategy, verbose=verbosity(args, json_output=args.json),
    )
    if not is_chief(strategy):
        return 0
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif args.quiet:
        print(result.table())
    return 0
