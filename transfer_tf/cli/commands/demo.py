"""`transfer-tf demo`: its arguments, and the call of its job."""

import argparse

from transfer_tf.training.settings import parse_weights


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    demo = subparsers.add_parser("demo", parents=[common],
                                 help="offline demo: ImageNet transfer against training from scratch")
    demo.add_argument("--scenario", choices=("elpv", "digits"), default="elpv",
                      help="elpv: ImageNet EfficientNet-Lite0 on 300 solar cells; digits: "
                           "pretrain on digits 0-4, fine-tune on 5-9 (default: elpv)")
    demo.add_argument("--out", default="saved_models/demo", help="(default: saved_models/demo)")
    demo.add_argument("--weights", type=parse_weights, default=argparse.SUPPRESS,
                      help="the transfer model's start (default: imagenet for elpv, source "
                           "pretraining for digits)")
    demo.add_argument("--seed", type=int, default=0, help="(default: 0)")
    demo.set_defaults(handler=run)
    return demo


def run(args):
    from transfer_tf.cli.demo import SCENARIOS
    from transfer_tf.cli.demo import run_demo as demo

    start = {"weights": args.weights} if hasattr(args, "weights") else {}
    demo(SCENARIOS[args.scenario](**start), out=args.out, seed=args.seed,
         verbose=0 if args.quiet else 2)
    return 0
