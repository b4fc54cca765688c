"""`transfer-tf`: the command line. Parses arguments and calls the library.

    transfer-tf backbones
    transfer-tf train DATA_DIR --backbone resnet50 --out saved_models/flowers
    transfer-tf compare DATA_DIR --backbone resnet50 --weights imagenet
    transfer-tf evaluate RUN DATA_DIR
    transfer-tf predict RUN IMAGE_OR_DIR... --top-k 3
    transfer-tf export RUN --precision float32 int8
    transfer-tf demo

Settings of `train` may also come from a YAML or TOML file (`--config`);
flags given on the command line override it. Errors print one line and exit
with status 1 (`--debug` shows the traceback).
"""

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

from transfer_tf.precision import DTYPE_POLICIES

PROG = "transfer-tf"
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
    train.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    _add_model_and_data_arguments(train)
    train.add_argument("--test-split", type=float, default=0.0, help="(default: 0)")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="stop a phase after PATIENCE epochs without a lower validation loss")

    compare = sub.add_parser("compare", parents=[common],
                             help="feature extraction vs fine-tuning vs from scratch on your data")
    compare.add_argument("data_dir", help="folder with one sub-folder of images per class")
    compare.add_argument("--out", help="folder for the table, JSON and plot "
                                       "(default: saved_models/compare-DATA_DIR-BACKBONE)")
    compare.add_argument("--overwrite", action="store_true", help="replace an earlier comparison at --out")
    _add_model_and_data_arguments(compare)
    compare.add_argument("--scratch-lr", type=float, default=1e-3,
                         help="learning rate from scratch (default: 1e-3)")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")

    evaluate = sub.add_parser("evaluate", parents=[common], help="metrics of a run on a folder of images")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("data_dir", help="folder with one sub-folder of images per class")
    evaluate.add_argument("--split", default="all", choices=("all", "train", "validation", "test"),
                          help="'all' images, or that part of the run's own split (default: all)")
    evaluate.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    predict = sub.add_parser("predict", parents=[common], help="classify images")
    predict.add_argument("run", help="run folder")
    predict.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--top-k", type=int, default=3, help="classes per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="print JSON")

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

    demo = sub.add_parser("demo", parents=[common],
                          help="offline demo: ImageNet transfer against training from scratch")
    demo.add_argument("--scenario", choices=("elpv", "digits"), default="elpv",
                      help="elpv: ImageNet EfficientNet-Lite0 on 300 solar cells; digits: "
                           "pretrain on digits 0-4, fine-tune on 5-9 (default: elpv)")
    demo.add_argument("--out", default="saved_models/demo", help="(default: saved_models/demo)")
    demo.add_argument("--weights", type=_weights, default=argparse.SUPPRESS,
                      help="the transfer model's start (default: imagenet for elpv, source "
                           "pretraining for digits)")
    demo.add_argument("--seed", type=int, default=0, help="(default: 0)")
    return parser


def _add_model_and_data_arguments(parser):
    """The options `train` and `compare` share: backbone, epochs, data loading."""
    parser.add_argument("--backbone", default="resnet50", help="see `transfer-tf backbones` (default: resnet50)")
    parser.add_argument("--weights", default="imagenet", type=_weights,
                        help="imagenet, none, or a weights file / run folder (default: imagenet)")
    parser.add_argument("--image-size", type=int, help="input size in pixels (default: the backbone's)")
    parser.add_argument("--head-epochs", type=int, default=5, help="phase 1 epochs (default: 5)")
    parser.add_argument("--fine-tune-epochs", type=int, default=5, help="phase 2 epochs (default: 5)")
    parser.add_argument("--unfreeze-blocks", type=_blocks, default=1,
                        help="top blocks trained in phase 2: a number or 'all' (default: 1)")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="phase 1 learning rate (default: 1e-3)")
    parser.add_argument("--fine-tune-lr", type=float, help="phase 2 learning rate (default: head-lr / 100)")
    parser.add_argument("--augment", default="none", choices=("none", "light", "strong"),
                        help="augmentation of the training images (default: none)")
    parser.add_argument("--resize", default="stretch", choices=("stretch", "crop", "pad"),
                        help="how images reach the input size (default: stretch)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    parser.add_argument("--validation-split", type=float, default=0.2, help="(default: 0.2)")
    parser.add_argument("--class-weight", choices=("none", "balanced"), default="none",
                        help="weigh classes by inverse frequency (default: none)")
    parser.add_argument("--pooling", choices=("avg", "max"), default="avg", help="(default: avg)")
    parser.add_argument("--dropout", type=float, default=0.2, help="(default: 0.2)")
    parser.add_argument("--dtype", choices=DTYPE_POLICIES,
                        help="compute in 16 bits with mixed_bfloat16 (CPUs with bfloat16 instructions, "
                             "TPUs) or mixed_float16 (GPUs); weights stay float32 (default: float32)")
    parser.add_argument("--cache", action="store_true", help="keep decoded images in memory")
    parser.add_argument("--feature-cache", default="auto", type=_feature_cache, metavar="MODE",
                        help="run the frozen base once: auto (memory up to 4 GB, else disk), "
                             "memory, off, or a folder to keep and reuse them in (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")


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
        if action.type is not None and value is not None and (isinstance(value, str) or action.type is float):
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
    out = args.out or f"saved_models/{Path(args.data_dir).resolve().name}-{args.backbone}"
    verbose = 0 if args.quiet else 1
    _, splits, result = train_run(
        args.data_dir, out, backbone=args.backbone, weights=args.weights,
        image_size=args.image_size, head_epochs=args.head_epochs,
        fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=args.unfreeze_blocks,
        head_lr=args.head_lr, fine_tune_lr=args.fine_tune_lr, augment=args.augment,
        resize=args.resize, batch_size=args.batch_size,
        validation_split=args.validation_split, test_split=args.test_split,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        early_stopping_patience=args.early_stopping, pooling=args.pooling,
        dropout=args.dropout, dtype=args.dtype, cache=args.cache, feature_cache=args.feature_cache,
        seed=args.seed, overwrite=args.overwrite, verbose=verbose,
    )
    if not args.quiet:
        print("\nData:\n" + splits.summary())
        print("Training:\n" + format_training(result))
    print(f"Saved the run to {out}")
    return 0


def run_compare(args):
    from transfer_tf.backbones import get_backbone
    from transfer_tf.compare import check_output, compare
    from transfer_tf.data.directory import from_directory
    from transfer_tf.weights import normalise_image_size

    spec = get_backbone(args.backbone)  # --resize is checked by argparse's choices
    size = normalise_image_size(args.image_size or spec.default_size, spec)
    out = Path(args.out or f"saved_models/compare-{Path(args.data_dir).resolve().name}-{spec.name}")
    check_output(out, args.overwrite)  # before the images are read
    verbose = 0 if (args.quiet or args.json) else 1
    splits = from_directory(
        args.data_dir, image_size=size, validation_split=args.validation_split,
        seed=args.seed, batch_size=args.batch_size, augment=args.augment, resize=args.resize,
        cache=args.cache, verbose=bool(verbose),
    )
    if verbose:
        print("\nData:\n" + splits.summary())
    result = compare(
        splits, backbone=spec.name, weights=args.weights, head_epochs=args.head_epochs,
        fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=args.unfreeze_blocks,
        head_lr=args.head_lr, fine_tune_lr=args.fine_tune_lr, scratch_lr=args.scratch_lr,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        pooling=args.pooling, dropout=args.dropout, dtype=args.dtype,
        feature_cache=args.feature_cache, seed=args.seed, out=out, overwrite=args.overwrite, verbose=verbose,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif args.quiet:
        print(result.table())
    return 0


def run_evaluate(args):
    from transfer_tf.evaluation import format_metrics
    from transfer_tf.saving import METRICS_FILE
    from transfer_tf.workflows import evaluate_run

    metrics = evaluate_run(
        args.run, args.data_dir, split=args.split, batch_size=args.batch_size,
        verbose=not (args.quiet or args.json),  # stdout carries only the JSON
    )
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.quiet and not args.json:
        print(f"Wrote {Path(args.run) / METRICS_FILE}")
    return 0


def run_predict(args):
    from transfer_tf.data.splits import skipped_report
    from transfer_tf.workflows import format_predictions, predict_files

    predictions, skipped = predict_files(args.run, args.paths, top_k=args.top_k)
    if args.json:
        print(json.dumps(predictions, indent=2))
        for line in skipped_report(skipped):
            print(line, file=sys.stderr)
    else:
        print(format_predictions(predictions, skipped))
    return 0


def run_export(args):
    from transfer_tf.exporting import TFLiteConfig, export
    from transfer_tf.workflows import run_splits

    precisions = [TFLiteConfig.from_name(name) for name in dict.fromkeys(args.precision)]
    int8_options = {"integer_io": args.integer_io}
    if args.calibration_images is not None:
        int8_options["num_calibration_images"] = args.calibration_images
    if args.integer_io or args.calibration_images is not None:
        if "int8" not in args.precision:
            raise ValueError("--integer-io and --calibration-images apply to int8; add int8 to --precision")
        precisions = [TFLiteConfig.int8(**int8_options) if c.precision == "int8" else c
                      for c in precisions]
    verbose = 0 if (args.quiet or args.json) else 1
    data = run_splits(args.run, args.data, verbose=bool(verbose)) if args.data else None
    result = export(
        args.run, args.out, precisions=precisions, data=data,
        allow_flex_ops=args.allow_flex_ops, name=args.name, description=args.description,
        version=args.model_version, num_parity_images=args.parity_images,
        latency_repeats=args.latency_repeats, overwrite=args.overwrite, verbose=verbose,
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
    "evaluate": run_evaluate,
    "predict": run_predict,
    "export": run_export,
    "demo": run_demo,
}


def _feature_cache(value):
    return value if value in ("auto", "memory", "off") else Path(value)


def _weights(value):
    return None if value.lower() == "none" else value


def _blocks(value):
    if str(value).lower() == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {value!r}") from None


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
