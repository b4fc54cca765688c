"""`transfer-tf train`: its arguments, and the call of its job."""

from pathlib import Path

from transfer_tf.cli.options import add_strategy, is_chief, strategy_of, verbosity
from transfer_tf.core.settings_base import add_arguments
from transfer_tf.training.settings import DataSettings, FineTuneSettings, ModelSettings


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    train = subparsers.add_parser("train", parents=[common], help="fine-tune a backbone on a folder of images")
    train.add_argument("data_dir", nargs="?", help="folder with one sub-folder of images per class")
    train.add_argument("--config", help="YAML or TOML file of settings; flags override it")
    train.add_argument("--out", help="run folder to write (default: saved_models/DATA_DIR-BACKBONE)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run at --out, finished or not")
    train.add_argument("--resume", action="store_true",
                       help="continue the unfinished run at --out from its last completed epoch")
    add_arguments(train, ModelSettings, DataSettings, FineTuneSettings)
    train.add_argument("--calibrate", action="store_true",
                       help="once trained, fit the probabilities' temperature and the 'unknown' threshold "
                            "on the validation images (calibration.json, the report, every export)")
    train.add_argument("--known-kept", type=float, default=None, metavar="SHARE",
                       help="with --calibrate: share of validation images the 'unknown' threshold keeps "
                            "(default: 0.95)")
    add_strategy(train)
    train.set_defaults(handler=run)
    return train


def run(args):
    from transfer_tf.cli.jobs import format_calibration, format_training, train_run
    from transfer_tf.evaluation.unknown import DEFAULT_KNOWN_KEPT

    if args.data_dir is None:
        raise ValueError("train needs DATA_DIR (an argument or `data_dir` in --config)")
    if args.known_kept is not None and not args.calibrate:
        raise ValueError(f"--known-kept sets the 'unknown' threshold that --calibrate chooses; add --calibrate. "
                         f"Received: --known-kept {args.known_kept}")
    strategy = strategy_of(args)
    out = args.out or f"saved_models/{Path(args.data_dir).resolve().name}-{args.backbone}"
    _, splits, result = train_run(
        args.data_dir, out, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        training=FineTuneSettings.from_args(args), overwrite=args.overwrite, resume=args.resume,
        strategy=strategy, calibrate=args.calibrate,
        known_kept=DEFAULT_KNOWN_KEPT if args.known_kept is None else args.known_kept, verbose=verbosity(args),
    )
    if not is_chief(strategy):
        return 0
    if not args.quiet:
        print("\nData:\n" + splits.summary())
        print("Training:\n" + format_training(result))
        if args.calibrate:
            print(format_calibration(out))
    print(f"Saved the run to {out}")
    return 0
