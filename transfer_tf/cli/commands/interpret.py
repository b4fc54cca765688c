"""`transfer-tf interpret`: its arguments, and the call of its job."""

from transfer_tf.cli.options import add_no_verify, verbosity


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    interpret = subparsers.add_parser(
        "interpret", parents=[common],
        help="a run's mistakes on a folder: top losses with Grad-CAM, most-confused classes")
    interpret.add_argument("run", help="run folder")
    interpret.add_argument("data_dir", help="folder with one sub-folder of images per class")
    interpret.add_argument("--out", help="folder to write (default: RUN/interpretation)")
    interpret.add_argument("--split", default="all", choices=("all", "train", "validation", "test"),
                           help="'all' images, or that part of the run's own split (default: all)")
    interpret.add_argument("--top-losses", type=int, default=12,
                           help="mistakes shown beside their Grad-CAM (default: 12)")
    interpret.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    add_no_verify(interpret)
    interpret.set_defaults(handler=run)
    return interpret


def run(args):
    from transfer_tf.cli.jobs import format_interpretation, interpret_run

    analysis, written = interpret_run(
        args.run, args.data_dir, args.out, split=args.split, top_losses=args.top_losses,
        batch_size=args.batch_size, verify=not args.no_verify, verbose=verbosity(args))
    print(format_interpretation(analysis))
    print(f"Wrote {', '.join(str(path) for path in written.values())}")
    return 0
