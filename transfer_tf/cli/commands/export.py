"""`transfer-tf export`: its arguments, and the call of its job."""

import json
import sys

from transfer_tf.cli.options import add_no_verify, verbosity
from transfer_tf.core.choices import EXPORT_FORMATS, PRECISIONS

PRECISION_CHOICES = tuple(p.replace("_", "-") for p in PRECISIONS)  # as typed on the command line


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    export = subparsers.add_parser("export", parents=[common],
                                   help="SavedModel, TFLite, ONNX, OpenVINO; each checked on held-out images")
    export.add_argument("run", help="run folder")
    export.add_argument("--out", help="export folder (default: RUN/export)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    export.add_argument("--formats", type=_format_list, metavar="F,F",
                        help=f"formats to write, some of {','.join(EXPORT_FORMATS)} (default: every format "
                             "whose packages are installed; the others are named with the pip command)")
    export.add_argument("--precision", nargs="+", metavar="P", default=list(PRECISION_CHOICES),
                        choices=PRECISION_CHOICES,
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
                        help="timed single-image runs per artefact and thread count (default: 50)")
    export.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                        help="fail (exit 1) if a file's held-out accuracy is more than POINTS below Keras's")
    export.add_argument("--json", action="store_true", help="print the parity report as JSON")
    add_no_verify(export)
    export.set_defaults(handler=run)
    return export


def run(args):
    from transfer_tf.cli.jobs import export_run

    result = export_run(
        args.run, args.out, precisions=args.precision, formats=args.formats, integer_io=args.integer_io,
        calibration_images=args.calibration_images, data_dir=args.data,
        allow_flex_ops=args.allow_flex_ops, name=args.name, description=args.description,
        version=args.model_version, num_parity_images=args.parity_images,
        latency_repeats=args.latency_repeats, max_accuracy_drop=args.max_accuracy_drop,
        overwrite=args.overwrite, verify=not args.no_verify,
        verbose=verbosity(args, json_output=args.json),
    )
    if args.json:
        print(json.dumps(result.parity, indent=2))
    elif args.quiet:
        print(result.parity_table())
    if result.failing:
        print(failing_message(result, args.max_accuracy_drop), file=sys.stderr)
        return 1
    return 0


def failing_message(result, max_accuracy_drop):
    """Which files lost too much accuracy, and which file to ship instead."""
    rows = result.parity
    keras = rows[0]["accuracy"]
    lost = ", ".join(f"{row['file']} ({100 * (keras - row['accuracy']):.1f} points)"
                     for row in rows if row.get("failing"))
    passing = [row for row in rows[1:] if row.get("failing") is False]
    instead = (f"Ship {min(passing, key=lambda row: row['size_bytes'])['file']} instead (the smallest file "
               "within the limit)" if passing else "No exported file is within the limit")
    points = f"{max_accuracy_drop:g} point" + ("" if max_accuracy_drop == 1 else "s")
    return (f"error: held-out accuracy fell more than {points} below the Keras model's "
            f"({keras:.1%}) for {lost}. {instead}. The files are written; see {result.directory / 'report.json'}.")


def _format_list(text):
    return [name.strip() for name in text.split(",") if name.strip()]
