"""`transfer-tf pretrain`: its arguments, and the call of its job."""

from transfer_tf.cli.options import add_strategy, is_chief, strategy_of, verbosity
from transfer_tf.core.choices import PRETRAINING_METHODS
from transfer_tf.core.settings_base import add_arguments
from transfer_tf.training.settings import DataSettings, parse_weights


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    pretrain = subparsers.add_parser("pretrain", parents=[common],
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
    add_strategy(pretrain)
    pretrain.set_defaults(handler=run)
    return pretrain


def run(args):
    from transfer_tf.cli.jobs import format_training, pretrain_run

    strategy = strategy_of(args)
    out = args.out or f"saved_models/pretrained-{args.backbone}-{args.method}"
    result = pretrain_run(
        args.data_dir, out, method=args.method, epochs=args.epochs, learning_rate=args.learning_rate,
        mask_ratio=args.mask_ratio, backbone=args.backbone, weights=args.weights,
        image_size=args.image_size, data=DataSettings.from_args(args), overwrite=args.overwrite,
        strategy=strategy, verbose=verbosity(args),
    )
    if not is_chief(strategy):
        return 0
    if not args.quiet:
        print("Pretraining:\n" + format_training(result.record))
    print(f"Saved the pretrained base to {out}; use it with --weights {out}")
    return 0
