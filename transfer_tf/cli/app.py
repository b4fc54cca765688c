"""`transfer-tf`: the command line. Parses arguments and calls the library.

    transfer-tf backbones
    transfer-tf train DATA_DIR --out saved_models/flowers
    transfer-tf compare DATA_DIR --backbone resnet50 --weights imagenet
    transfer-tf adapt RUN SOURCE_DIR TARGET_DIR --method dann
    transfer-tf pretrain DATA_DIR --method masked --out saved_models/pretrained
    transfer-tf lr-find RUN_OR_DATA --phase head --plot sweep.png
    transfer-tf evaluate RUN DATA_DIR
    transfer-tf interpret RUN DATA_DIR --out saved_models/flowers/interpretation
    transfer-tf audit DATA_DIR --out saved_models/flowers-audit
    transfer-tf predict RUN IMAGE_OR_DIR... --top-k 3
    transfer-tf export RUN --formats saved_model,tflite,onnx --max-accuracy-drop 1
    transfer-tf bench RUN
    transfer-tf rank-bases DATA_DIR
    transfer-tf auto DATA_DIR --budget 5m --out saved_models/flowers-auto
    transfer-tf demo

Each command is a module of `cli/commands` (its arguments and the call of
its job in `cli/jobs`). The options of `train` and `compare` are generated
from the settings classes (`training/settings.py`). Settings of `train` may
also come from a YAML or TOML file (`--config`); flags given on the command
line override it. Errors print one line and exit with status 1 (`--debug`
shows the traceback).

Building the parser loads no TensorFlow, so `--help` answers at once; a
command loads it (quietly) when it runs.
"""

import argparse
import os
import sys
import time

from transfer_tf.cli.commands import (
    adapt,
    audit,
    auto,
    backbones,
    bench,
    compare,
    demo,
    evaluate,
    export,
    interpret,
    lr_find,
    predict,
    pretrain,
    rank_bases,
    train,
)
from transfer_tf.cli.config_file import apply_config
from transfer_tf.cli.options import common_options
from transfer_tf.core.native_logs import load_tensorflow_quietly

PROG = "transfer-tf"
# In the order `transfer-tf --help` lists them.
COMMANDS = {
    "backbones": backbones, "train": train, "compare": compare, "adapt": adapt, "pretrain": pretrain,
    "lr-find": lr_find, "evaluate": evaluate, "interpret": interpret, "audit": audit, "predict": predict,
    "export": export, "bench": bench, "rank-bases": rank_bases, "auto": auto,
    "demo": demo,
}


def main(argv=None):
    """Entry point of `transfer-tf`; returns the exit status."""
    started = time.monotonic()  # before TensorFlow loads: `auto --budget` counts from here
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
    args.started = started
    try:
        load_tensorflow_quietly(quiet=not args.debug)
        return args.handler(args)
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
    """The parser of `transfer-tf` and every command in `COMMANDS`."""
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG, description="Transfer learning for image classification with Keras.", parents=[common],
    )
    parser.set_defaults(quiet=False, debug=False, command=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(subparsers, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
