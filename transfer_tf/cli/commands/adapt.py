"""`transfer-tf adapt`: its arguments, and the call of its job."""

from transfer_tf.cli.options import add_strategy, is_chief, strategy_of, verbosity
from transfer_tf.core.settings_base import add_arguments
from transfer_tf.training.settings import DataSettings, FineTuneSettings


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    adapt = subparsers.add_parser("adapt", parents=[common],
                                  help="adapt a run to another domain: AdaBN, DANN or Deep CORAL")
    adapt.add_argument("run", help="run folder trained on the source domain")
    adapt.add_argument("source_dir", help="labelled source images, one sub-folder per class "
                                          "(adabn reads their images only)")
    adapt.add_argument("target_dir", help="target images, any folder (class sub-folders, if they "
                                          "match, only evaluate the result)")
    adapt.add_argument("--method", choices=("adabn", "dann", "coral"), default="adabn",
                       help="(default: adabn)")
    adapt.add_argument("--labelled-target", metavar="DIR",
                       help="a few labelled target images, one sub-folder per class")
    adapt.add_argument("--domain-weight", type=float,
                       help="weight of the alignment loss (default: dann 0.1, coral 1.0; adabn has none)")
    adapt.add_argument("--out", help="adapted run folder (default: RUN-METHOD)")
    adapt.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    add_arguments(adapt, DataSettings, FineTuneSettings)
    add_strategy(adapt)
    adapt.set_defaults(handler=run)
    return adapt


def run(args):
    from transfer_tf.cli.jobs import adapt_run, format_training

    strategy = strategy_of(args)
    out = args.out or f"{str(args.run).rstrip('/')}-{args.method}"
    _, result, metrics = adapt_run(
        args.run, args.source_dir, args.target_dir, out, method=args.method,
        labelled_target_dir=args.labelled_target, domain_weight=args.domain_weight,
        data=DataSettings.from_args(args), training=FineTuneSettings.from_args(args),
        overwrite=args.overwrite, strategy=strategy, verbose=verbosity(args),
    )
    if not is_chief(strategy):
        return 0
    if not args.quiet:
        print("Adaptation:\n" + format_training(result))
    if metrics is not None:
        print(f"Target images: accuracy {metrics['accuracy']:.1%}, balanced accuracy "
              f"{metrics['balanced_accuracy']:.1%}")
    print(f"Saved the adapted run to {out}")
    return 0
