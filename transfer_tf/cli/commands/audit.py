"""`transfer-tf audit`: its arguments, and the call of the audit."""

from pathlib import Path

from transfer_tf.cli.options import verbosity
from transfer_tf.training.settings import parse_weights


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    audit = subparsers.add_parser(
        "audit", parents=[common],
        help="what is wrong with a folder of images: label issues, duplicates, leakage, outliers, odd files")
    audit.add_argument("data_dir", help="one sub-folder of images per class, or train/, validation/, test/ "
                                        "folders holding them")
    audit.add_argument("--out", help="folder for audit.csv, audit.json, report.html (default: "
                                     "saved_models/DATA_DIR-audit); never inside DATA_DIR")
    audit.add_argument("--backbone", default="efficientnet_lite0",
                       help="backbone whose features are compared (default: efficientnet_lite0, ImageNet "
                            "weights offline)")
    audit.add_argument("--weights", default="imagenet", type=parse_weights,
                       help="'imagenet', 'none' or a weights file (default: imagenet)")
    audit.add_argument("--run", help="use this run folder's base instead of --backbone")
    audit.add_argument("--image-size", type=int, help="(default: the backbone's, or the run's)")
    audit.add_argument("--resize", default="stretch", choices=("stretch", "crop", "pad"), help="(default: stretch)")
    audit.add_argument("--validation-split", type=float, default=0.2,
                       help="the split `train` would make, for leakage, when DATA_DIR is not split already "
                            "(default: 0.2)")
    audit.add_argument("--test-split", type=float, default=0.0, help="(default: 0.0)")
    audit.add_argument("--seed", type=int, default=0, help="seed of that split and of the K folds (default: 0)")
    audit.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold classifier (default: 5)")
    audit.add_argument("--near-duplicate-threshold", type=float, default=None,
                       help="correlation of two images' 16 x 16 grayscale signatures from which they are near "
                            "duplicates (default: 0.998)")
    audit.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    audit.set_defaults(handler=run)
    return audit


def run(args):
    from transfer_tf.auditing.folder_audit import NEAR_DUPLICATE_THRESHOLD, audit

    out = args.out or f"saved_models/{Path(args.data_dir).resolve().name}-audit"
    threshold = NEAR_DUPLICATE_THRESHOLD if args.near_duplicate_threshold is None else args.near_duplicate_threshold
    result = audit(
        args.data_dir, out=out, backbone=args.backbone, weights=args.weights, run=args.run,
        image_size=args.image_size, resize=args.resize, validation_split=args.validation_split,
        test_split=args.test_split, seed=args.seed, folds=args.folds, near_duplicate_threshold=threshold,
        batch_size=args.batch_size, verbose=bool(verbosity(args)))
    if args.quiet:
        print(result.summary())
        print(f"Wrote {out}/audit.csv, audit.json, report.html")
    return 0
