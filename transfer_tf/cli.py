"""`transfer-tf`: the command line. Parses arguments and calls the library.

    transfer-tf backbones
    transfer-tf train DATA_DIR --out saved_models/flowers
    transfer-tf compare DATA_DIR --backbone resnet50 --weights imagenet
    transfer-tf adapt RUN SOURCE_DIR TARGET_DIR --method dann
    transfer-tf pretrain DATA_DIR --method masked --out saved_models/pretrained
    transfer-tf lr-find RUN_OR_DATA --phase head --plot sweep.png
    transfer-tf evaluate RUN DATA_DIR
    transfer-tf predict RUN IMAGE_OR_DIR... --top-k 3
    transfer-tf export RUN --precision float32 int8
    transfer-tf demo

The options of `train` and `compare` are generated from the settings
classes (`settings.py`). Settings of `train` may also come from a YAML or
TOML file (`--config`); flags given on the command line override it. Errors
print one line and exit with status 1 (`--debug` shows the traceback).

Building the parser loads no TensorFlow, so `--help` answers at once; a
command loads it (quietly) when it runs.
"""

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

from transfer_tf._native_logs import load_tensorflow_quietly
from transfer_tf.choices import PRETRAINING_METHODS
from transfer_tf.settings import (
    DataSettings, FineTuneSettings, ModelSettings, ScratchSettings, add_arguments, parse_blocks, parse_weights,
)

PROG = "transfer-tf"
_STRATEGY_HELP = ("train with tf.distribute: mirrored (this machine's GPUs) or multi-worker (the "
                  "cluster in TF_CONFIG; run the same command on every worker, only the chief writes) "
                  "(default: none)")
_NO_VERIFY_HELP = ("load the run even if its files differ from the checksums its config.json recorded "
                   "(for a file you changed on purpose)")
_PRECISION_CHOICES = ("float32", "float16", "dynamic-range", "int8")


def main(argv=None):
    """Entry point of `transfer-tf`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        try:
            apply_config(parser, args.command, args.config)
        except (OSError, ValueError) as error:
            parser.exit(2, f"{PROG}: error: {error}\n")
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        load_tensorflow_quietly(quiet=not args.debug)
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. `transfer-tf backbones | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = str(error).strip() or type(error).__name__
        print(f"{PROG}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 1


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only results and errors")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's own logs")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Transfer learning for image classification with Keras.",
        parents=[common],
    )
    parser.set_defaults(quiet=False, debug=False, command=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    backbones = sub.add_parser("backbones", parents=[common], help="list the supported backbones")
    backbones.add_argument("--json", action="store_true", help="print JSON")

    train = sub.add_parser("train", parents=[common], help="fine-tune a backbone on a folder of images")
    train.add_argument("data_dir", nargs="?", help="folder with one sub-folder of images per class")
    train.add_argument("--config", help="YAML or TOML file of settings; flags override it")
    train.add_argument("--out", help="run folder to write (default: saved_models/DATA_DIR-BACKBONE)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run at --out, finished or not")
    train.add_argument("--resume", action="store_true",
                       help="continue the unfinished run at --out from its last completed epoch")
    add_arguments(train, ModelSettings, DataSettings, FineTuneSettings)
    train.add_argument("--strategy", choices=("mirrored", "multi-worker"), help=_STRATEGY_HELP)

    compare = sub.add_parser("compare", parents=[common],
                             help="feature extraction vs fine-tuning vs from scratch on your data")
    compare.add_argument("data_dir", help="folder with one sub-folder of images per class")
    compare.add_argument("--out", help="folder for the table, JSON and plot "
                                       "(default: saved_models/compare-DATA_DIR-BACKBONE)")
    compare.add_argument("--overwrite", action="store_true", help="replace an earlier comparison at --out")
    add_arguments(compare, ModelSettings, DataSettings, FineTuneSettings, ScratchSettings)
    compare.add_argument("--strategy", choices=("mirrored", "multi-worker"), help=_STRATEGY_HELP)
    compare.add_argument("--classical", choices=("logistic", "linear_svm", "rbf_svm", "knn", "none"),
                         default="logistic",
                         help="estimator of the classical row on the frozen features (default: logistic)")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")

    adapt = sub.add_parser("adapt", parents=[common],
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
    adapt.add_argument("--strategy", choices=("mirrored", "multi-worker"), help=_STRATEGY_HELP)

    pretrain = sub.add_parser("pretrain", parents=[common],
                              help="pretrain a base on unlabelled images (autoencoder, masked images)")
    pretrain.add_argument("data_dir", help="images in any folders; labels are ignored")
    pretrain.add_argument("--method", choices=PRETRAINING_METHODS, default="autoencoder",
                          help="(default: autoencoder)")
    pretrain.add_argument("--epochs", type=int, default=10, help="(default: 10)")
    pretrain.add_argument("--learning-rate", type=float, default=1e-3, help="(default: 1e-3)")
    pretrain.add_argument("--mask-ratio", type=float, default=0.5,
                          help="masked: fraction of the patches hidden (default: 0.5)")
    pretrain.add_argument("--out", help="folder --weights takes (default: saved_models/pretrained-BACKBONE-METHOD)")
    pretrain.add_argument("--overwrite", action="store_true", help="replace an existing folder at --out")
    pretrain.add_argument("--backbone", default="efficientnet_lite0",
                          help="see `transfer-tf backbones` (default: efficientnet_lite0)")
    pretrain.add_argument("--weights", type=parse_weights, default=None,
                          help="the start: none (random) or imagenet (continued pretraining) (default: none)")
    pretrain.add_argument("--image-size", type=int, help="input size in pixels (default: the backbone's)")
    add_arguments(pretrain, DataSettings)
    pretrain.add_argument("--strategy", choices=("mirrored", "multi-worker"), help=_STRATEGY_HELP)

    lr_find = sub.add_parser("lr-find", parents=[common],
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

    evaluate = sub.add_parser("evaluate", parents=[common], help="metrics of a run on a folder of images")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("data_dir", help="folder with one sub-folder of images per class")
    evaluate.add_argument("--split", default="all", choices=("all", "train", "validation", "test"),
                          help="'all' images, or that part of the run's own split (default: all)")
    evaluate.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--no-verify", action="store_true", help=_NO_VERIFY_HELP)

    predict = sub.add_parser("predict", parents=[common], help="classify images")
    predict.add_argument("run", help="run folder")
    predict.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--top-k", type=int, default=3, help="classes per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.add_argument("--no-verify", action="store_true", help=_NO_VERIFY_HELP)

    export = sub.add_parser("export", parents=[common],
                            help="SavedModel + TFLite with metadata, checked against Keras")
    export.add_argument("run", help="run folder")
    export.add_argument("--out", help="export folder (default: RUN/export)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    export.add_argument("--precision", nargs="+", metavar="P", default=list(_PRECISION_CHOICES),
                        choices=_PRECISION_CHOICES,
                        help="TFLite precisions: float32 float16 dynamic-range int8 (default: all)")
    export.add_argument("--integer-io", action="store_true",
                        help="int8 model takes uint8 pixels and returns uint8 scores (NPUs, MCUs)")
    export.add_argument("--calibration-images", type=int, metavar="N",
                        help="training images that calibrate int8 (default: 300)")
    export.add_argument("--data", metavar="DIR",
                        help="images for calibration and checks, split as the run was "
                             "(default: the run's own data)")
    export.add_argument("--allow-flex-ops", action="store_true",
                        help="allow TensorFlow (Flex) ops that LiteRT's built-ins lack")
    export.add_argument("--name", help="model name in the metadata (default: the run folder's name)")
    export.add_argument("--description", help="model description in the metadata")
    export.add_argument("--model-version", default="1", help="model version in the metadata (default: 1)")
    export.add_argument("--parity-images", type=int, default=1000,
                        help="held-out images that check each artefact (default: 1000)")
    export.add_argument("--latency-repeats", type=int, default=50,
                        help="single-image runs per artefact, median reported (default: 50)")
    export.add_argument("--json", action="store_true", help="print the parity report as JSON")
    export.add_argument("--no-verify", action="store_true", help=_NO_VERIFY_HELP)

    demo = sub.add_parser("demo", parents=[common],
                          help="offline demo: ImageNet transfer against training from scratch")
    demo.add_argument("--scenario", choices=("elpv", "digits"), default="elpv",
                      help="elpv: ImageNet EfficientNet-Lite0 on 300 solar cells; digits: "
                           "pretrain on digits 0-4, fine-tune on 5-9 (default: elpv)")
    demo.add_argument("--out", default="saved_models/demo", help="(default: saved_models/demo)")
    demo.add_argument("--weights", type=parse_weights, default=argparse.SUPPRESS,
                      help="the transfer model's start (default: imagenet for elpv, source "
                           "pretraining for digits)")
    demo.add_argument("--seed", type=int, default=0, help="(default: 0)")
    return parser


def apply_config(parser, command, path):
    """Makes the settings in a YAML/TOML file the defaults of a subcommand."""
    if command != "train":
        raise ValueError(f"--config applies to `train`. Received: command={command}")
    settings = load_config(path)
    subparser = _subparsers(parser)[command]
    actions = {a.dest: a for a in subparser._actions if a.dest not in ("help", "config")}
    defaults = {}
    for key, value in settings.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise ValueError(f"unknown setting {key!r} in {path}. Known settings: {known}")
        action = actions[dest]
        if action.type is not None and isinstance(value, str):
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
                raise ValueError(f"bad value for {key!r} in {path}: {error}") from None
        if action.choices is not None and value not in action.choices:
            raise ValueError(
                f"bad value for {key!r} in {path}: choose from {', '.join(action.choices)}. "
                f"Received: {value!r}"
            )
        defaults[dest] = value
    subparser.set_defaults(**defaults)


def load_config(path):
    """Reads a `.yaml`/`.yml` or `.toml` settings file into a flat dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            settings = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
    elif path.suffix == ".toml":
        try:
            settings = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from None
    else:
        raise ValueError(f"config files end in .yaml, .yml or .toml. Received: {path}")
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold settings as key: value pairs")
    return settings


def run_backbones(args):
    from transfer_tf.backbones import list_backbones

    specs = list_backbones()
    if args.json:
        print(json.dumps([_backbone_row(s) for s in specs], indent=2))
        return 0
    print(f"{'name':<20}{'size':>6}{'min':>6}  {'preprocessing':<14}{'imagenet offline':<18}"
          "blocks (bottom to top)")
    for s in specs:
        offline = "yes" if s.imagenet_offline else "no"
        print(f"{s.name:<20}{s.default_size:>6}{s.min_size:>6}  {s.preprocessing:<14}{offline:<18}"
              f"{', '.join(s.block_names)}")
    print("\nImageNet weights: " + "; ".join(f"{s.name}: {s.imagenet_source}" for s in specs
                                            if s.packaged_weights is not None))
    print("The others download from Keras on first use (weights=PATH works offline).")
    return 0


def run_train(args):
    from transfer_tf.workflows import format_training, train_run

    if args.data_dir is None:
        raise ValueError("train needs DATA_DIR (an argument or `data_dir` in --config)")
    strategy = _strategy(args)
    out = args.out or f"saved_models/{Path(args.data_dir).resolve().name}-{args.backbone}"
    _, splits, result = train_run(
        args.data_dir, out, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        training=FineTuneSettings.from_args(args), overwrite=args.overwrite, resume=args.resume,
        strategy=strategy, verbose=0 if args.quiet else 1,
    )
    if not _is_chief(strategy):
        return 0
    if not args.quiet:
        print("\nData:\n" + splits.summary())
        print("Training:\n" + format_training(result))
    print(f"Saved the run to {out}")
    return 0


def _strategy(args):
    """The `--strategy`, made before the command runs any TensorFlow op (multi-worker needs that)."""
    from transfer_tf.distribute import make_strategy

    return make_strategy(args.strategy)


def _is_chief(strategy):
    from transfer_tf.distribute import is_chief

    return is_chief(strategy)


def run_compare(args):
    from transfer_tf.workflows import compare_run

    strategy = _strategy(args)
    out = args.out or f"saved_models/compare-{Path(args.data_dir).resolve().name}-{args.backbone}"
    result, _ = compare_run(
        args.data_dir, out, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        training=FineTuneSettings.from_args(args), scratch_lr=ScratchSettings.from_args(args).learning_rate,
        classical=None if args.classical == "none" else args.classical, overwrite=args.overwrite,
        strategy=strategy, verbose=0 if (args.quiet or args.json) else 1,
    )
    if not _is_chief(strategy):
        return 0
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif args.quiet:
        print(result.table())
    return 0


def run_adapt(args):
    from transfer_tf.workflows import adapt_run, format_training

    strategy = _strategy(args)
    out = args.out or f"{str(args.run).rstrip('/')}-{args.method}"
    _, result, metrics = adapt_run(
        args.run, args.source_dir, args.target_dir, out, method=args.method,
        labelled_target_dir=args.labelled_target, domain_weight=args.domain_weight,
        data=DataSettings.from_args(args), training=FineTuneSettings.from_args(args),
        overwrite=args.overwrite, strategy=strategy, verbose=0 if args.quiet else 1,
    )
    if not _is_chief(strategy):
        return 0
    if not args.quiet:
        print("Adaptation:\n" + format_training(result))
    if metrics is not None:
        print(f"Target images: accuracy {metrics['accuracy']:.1%}, balanced accuracy "
              f"{metrics['balanced_accuracy']:.1%}")
    print(f"Saved the adapted run to {out}")
    return 0


def run_pretrain(args):
    from transfer_tf.workflows import format_training, pretrain_run

    strategy = _strategy(args)
    out = args.out or f"saved_models/pretrained-{args.backbone}-{args.method}"
    result = pretrain_run(
        args.data_dir, out, method=args.method, epochs=args.epochs, learning_rate=args.learning_rate,
        mask_ratio=args.mask_ratio, backbone=args.backbone, weights=args.weights,
        image_size=args.image_size, data=DataSettings.from_args(args), overwrite=args.overwrite,
        strategy=strategy, verbose=0 if args.quiet else 1,
    )
    if not _is_chief(strategy):
        return 0
    if not args.quiet:
        print("Pretraining:\n" + format_training(result.record))
    print(f"Saved the pretrained base to {out}; use it with --weights {out}")
    return 0


def run_lr_find(args):
    from transfer_tf.workflows import lr_find_run

    result = lr_find_run(
        args.source, phase=args.phase, unfreeze_blocks=args.unfreeze_blocks, steps=args.steps,
        plot=args.plot, model=ModelSettings.from_args(args), data=DataSettings.from_args(args),
        verbose=0 if (args.quiet or args.json) else 1,
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


def run_evaluate(args):
    from transfer_tf.evaluation import format_metrics
    from transfer_tf.saving import METRICS_FILE
    from transfer_tf.workflows import evaluate_run

    metrics = evaluate_run(
        args.run, args.data_dir, split=args.split, batch_size=args.batch_size, verify=not args.no_verify,
        verbose=not (args.quiet or args.json),  # stdout carries only the JSON
    )
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.quiet and not args.json:
        print(f"Wrote {Path(args.run) / METRICS_FILE}")
    return 0


def run_predict(args):
    from transfer_tf.data.splits import skipped_report
    from transfer_tf.workflows import format_predictions, predict_files

    predictions, skipped = predict_files(args.run, args.paths, top_k=args.top_k, verify=not args.no_verify)
    if args.json:
        print(json.dumps(predictions, indent=2))
        for line in skipped_report(skipped):
            print(line, file=sys.stderr)
    else:
        print(format_predictions(predictions, skipped))
    return 0


def run_export(args):
    from transfer_tf.workflows import export_run

    result = export_run(
        args.run, args.out, precisions=args.precision, integer_io=args.integer_io,
        calibration_images=args.calibration_images, data_dir=args.data,
        allow_flex_ops=args.allow_flex_ops, name=args.name, description=args.description,
        version=args.model_version, num_parity_images=args.parity_images,
        latency_repeats=args.latency_repeats, overwrite=args.overwrite, verify=not args.no_verify,
        verbose=0 if (args.quiet or args.json) else 1,
    )
    if args.json:
        print(json.dumps(result.parity, indent=2))
    elif args.quiet:
        print(result.parity_table())
    return 0


def run_demo(args):
    from transfer_tf.demo import SCENARIOS, run_demo as demo

    start = {"weights": args.weights} if hasattr(args, "weights") else {}
    demo(SCENARIOS[args.scenario](**start), out=args.out, seed=args.seed,
         verbose=0 if args.quiet else 2)
    return 0


COMMANDS = {
    "backbones": run_backbones,
    "train": run_train,
    "compare": run_compare,
    "adapt": run_adapt,
    "pretrain": run_pretrain,
    "lr-find": run_lr_find,
    "evaluate": run_evaluate,
    "predict": run_predict,
    "export": run_export,
    "demo": run_demo,
}


def _backbone_row(spec):
    row = spec.to_dict()
    del row["keras_application"]
    return row


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


if __name__ == "__main__":
    sys.exit(main())
