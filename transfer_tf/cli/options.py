"""Options several commands share, and the distribution strategy they start with.

Loads no TensorFlow: the parser is built from these, and `--help` must
answer at once.
"""

import argparse

STRATEGY_HELP = ("train with tf.distribute: mirrored (this machine's GPUs) or multi-worker (the "
                 "cluster in TF_CONFIG; run the same command on every worker, only the chief writes) "
                 "(default: none)")
NO_VERIFY_HELP = ("load the run even if its files differ from the checksums its config.json recorded "
                  "(for a file you changed on purpose)")


def common_options():
    """The parent parser of every command: `--quiet` and `--debug`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only results and errors")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's own logs")
    return common


def add_strategy(parser):
    parser.add_argument("--strategy", choices=("mirrored", "multi-worker"), help=STRATEGY_HELP)


def add_no_verify(parser):
    parser.add_argument("--no-verify", action="store_true", help=NO_VERIFY_HELP)


def strategy_of(args):
    """The `--strategy`, made before the command runs any TensorFlow op (multi-worker needs that)."""
    from transfer_tf.model.distribute import make_strategy

    return make_strategy(args.strategy)


def is_chief(strategy):
    """Whether this process writes the results (always, without several workers)."""
    from transfer_tf.model.distribute import is_chief as chief

    return chief(strategy)


def verbosity(args, *, json_output=False):
    """0 when only results are printed (`--quiet`, or JSON on stdout), else 1."""
    return 0 if (args.quiet or json_output) else 1
