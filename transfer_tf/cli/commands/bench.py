"""`transfer-tf bench`: its arguments, and the call of its job."""

import dataclasses
import json
from pathlib import Path

from transfer_tf.cli.options import verbosity


def add_parser(subparsers, common):
    """Adds the command to `subparsers`; `common` holds the options every command takes."""
    bench = subparsers.add_parser("bench", parents=[common],
                                  help="latency of each exported file at batch 1, against the CPU's floor")
    bench.add_argument("run", help="run folder (its export/ is timed) or an export folder")
    bench.add_argument("--repeats", type=int, default=50,
                       help="timed runs per file and thread count, after a warm-up (default: 50)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(handler=run)
    return bench


def run(args):
    from transfer_tf.exporting.bench import bench

    folder = Path(args.run)
    if (folder / "export").is_dir():
        folder = folder / "export"
    result = bench(folder, repeats=args.repeats, verbose=verbosity(args, json_output=args.json))
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str) if args.json else result.table())
    return 0
