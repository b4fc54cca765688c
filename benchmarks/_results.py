"""What every benchmark prints and writes at its end: spreads over seeds, the machine, the JSON file."""

import json
import statistics
import sys


def spread(values):
    """`"81.2% (80.1%-82.3%)"`: the mean and the range of fractions."""
    values = list(values)
    return f"{statistics.mean(values):.1%} ({min(values):.1%}-{max(values):.1%})"


def write_results(out, script, argv, record, *, machine=None):
    """Prints the CPU and TensorFlow's settings, and writes `record` with them and the command to `out`.

    `argv` is what `main(argv)` was given; `None` (run from the shell) records the shell's arguments.
    `machine` is the `cpu_summary()` of the process that ran the work, when that was not this one.
    """
    import transfer_tf as ttf

    argv = sys.argv[1:] if argv is None else argv
    machine = ttf.cpu_summary() if machine is None else machine
    print(f"\nCPU: {machine['cpu']}; TensorFlow: {machine['settings']}, oneDNN {machine['onednn_enabled']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": f"python benchmarks/{script} " + " ".join(argv),
                               **record, "machine": machine}, indent=2) + "\n")
    print(f"Wrote {out}")
