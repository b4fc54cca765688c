"""`transfer-tf backbones`: its arguments, and the call of its job."""

import json


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    backbones = subparsers.add_parser("backbones", parents=[common], help="list the supported backbones")
    backbones.add_argument("--json", action="store_true", help="print JSON")
    backbones.set_defaults(handler=run)
    return backbones


def run(args):
    from transfer_tf.backbones.registry import list_backbones

    specs = list_backbones()
    if args.json:
        print(json.dumps([_row(s) for s in specs], indent=2))
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


def _row(spec):
    row = spec.to_dict()
    del row["keras_application"]
    return row
