"""What checking a 1 GB feature cache costs, next to computing it again.

A reused cache entry is read and its SHA-256 compared with `key.json` before
training uses it (`transfer_tf.core.integrity`). This times that check on a 1 GB
`.npy` file (median of `--repeats`, the file in the page cache as it is
right after a run wrote it), and the forward pass that would recompute the
same bytes: EfficientNet-Lite0's frozen base at 224 px (7 x 7 x 1280 float32
features per image), timed on `--images` images and scaled to 1 GB.

    python benchmarks/verify_cost.py
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import transfer_tf as ttf  # first: it turns oneDNN on before TensorFlow loads

import numpy as np

from transfer_tf.core import integrity

from _results import write_results

GIB = 2**30


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "verify_cost.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_features.npy"
        rows = int(args.gigabytes * GIB / (7 * 7 * 1280 * 4))
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 7, 7, 1280))
        rng = np.random.default_rng(0)
        for start in range(0, rows, 256):
            array[start:start + 256] = rng.random((min(256, rows - start), 7, 7, 1280), np.float32)
        array.flush()
        del array
        size = path.stat().st_size
        record = integrity.fingerprint(path)  # as a run records it
        checks = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            assert integrity.damage(path, record) is None
            checks.append(time.perf_counter() - start)
    check = statistics.median(checks)

    clf = ttf.ImageClassifier.from_backbone("efficientnet_lite0", num_classes=2, image_size=224)
    images = np.random.default_rng(0).uniform(0, 255, (args.images, 224, 224, 3)).astype("float32")
    clf.base(clf.preprocessor(images[:8]), training=False)  # warm-up
    start = time.perf_counter()
    for batch in range(0, args.images, 32):
        clf.base(clf.preprocessor(images[batch:batch + 32]), training=False)
    per_image = (time.perf_counter() - start) / args.images
    recompute = per_image * size / (7 * 7 * 1280 * 4)

    print(f"Cache file: {size / GIB:.2f} GiB ({rows} images of Lite0 features at 224 px)")
    print(f"Verify (SHA-256, median of {args.repeats}): {check:.2f} s ({size / GIB / check:.2f} GiB/s)")
    print(f"Recompute (Lite0 forward pass, {per_image * 1000:.1f} ms per image): {recompute:.0f} s")
    print(f"Verification costs {check / recompute:.2%} of recomputing.")
    write_results(Path(args.out), "verify_cost.py", sys.argv[1:], {
        "bytes": size, "verify_seconds": checks, "verify_median_seconds": check,
        "recompute_seconds_per_image": per_image, "recompute_seconds": recompute,
        "verify_over_recompute": check / recompute})


if __name__ == "__main__":
    main()
