"""Does Grad-CAM point at the object? Shapes on texture, where the answer is known.

Each image is a textured background (smoothed noise in a random tint) with
one shape drawn at a random place and size: a circle, a square or a
triangle, the class. A classifier is fine-tuned with `fine_tune` (two
phases) and `ttf.grad_cam` maps every test image it classifies correctly,
on the base's last feature map (the default) and on the block below it;
the figure is the share of those maps whose peak falls inside the shape's
bounding box (a few pixels of margin).

EfficientNet-Lite0 starts from its ImageNet weights (offline) and is
fine-tuned in two phases. ResNet50 and VGG16 cannot download theirs here, so
they start from random weights and every layer trains (`train_from_scratch`:
a frozen random base learns nothing); the output says which. With internet,
pass `--weights imagenet`.

    python benchmarks/grad_cam.py
    python benchmarks/grad_cam.py --backbones efficientnet_lite0 --seeds 0 1 2
    python benchmarks/grad_cam.py --top-losses benchmarks/results/grad_cam_top_losses

Writes `benchmarks/results/grad_cam.json` and a picture of the first maps.
"""

import argparse
import statistics
import time
from pathlib import Path

import transfer_tf as ttf  # first: sets TensorFlow's CPU options before it loads
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from _results import write_results

RESULTS = Path(__file__).parent / "results" / "grad_cam.json"
SHAPES = ("circle", "square", "triangle")
MARGIN = 3


def shape_image(rng, size):
    """One image, its class and the shape's box `(top, left, bottom, right)`."""
    noise = rng.uniform(0, 255, (size // 4, size // 4, 3)).astype(np.uint8)
    background = Image.fromarray(noise).resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    tint = rng.uniform(0.4, 1.0, 3)
    image = Image.fromarray((np.asarray(background) * tint).astype(np.uint8))
    label = int(rng.integers(len(SHAPES)))
    side = int(rng.integers(size // 5, size // 3))
    left, top = (int(v) for v in rng.integers(0, size - side, 2))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw = ImageDraw.Draw(image)
    box = (left, top, left + side, top + side)
    if SHAPES[label] == "circle":
        draw.ellipse(box, fill=colour)
    elif SHAPES[label] == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left + side / 2, top), (left, top + side), (left + side, top + side)], fill=colour)
    return np.asarray(image), label, (top, left, top + side, left + side)


def shape_set(count, size, seed):
    rng = np.random.default_rng(seed)
    images, labels, boxes = zip(*(shape_image(rng, size) for _ in range(count)))
    return np.stack(images), np.array(labels), np.array(boxes)


def peak_inside(maps, boxes):
    """Whether each map's maximum lies inside its box (with `MARGIN` pixels to spare)."""
    inside = []
    for heat, (top, left, bottom, right) in zip(maps, boxes):
        row, column = np.unravel_index(int(heat.argmax()), heat.shape)
        inside.append(top - MARGIN <= row <= bottom + MARGIN and left - MARGIN <= column <= right + MARGIN)
    return np.array(inside)


def run_one(backbone, weights, args, seed):
    train = shape_set(args.train, args.image_size, seed)
    validation = shape_set(args.train // 4, args.image_size, seed + 1000)
    test = shape_set(args.test, args.image_size, seed + 2000)
    clf = ttf.ImageClassifier.from_backbone(backbone, class_names=list(SHAPES), image_size=args.image_size,
                                            weights=weights, seed=seed)
    tick = time.perf_counter()
    if weights is None:  # a frozen random base learns nothing: every layer trains
        ttf.train_from_scratch(clf, train[:2], validation[:2], epochs=args.scratch_epochs,
                               learning_rate=args.scratch_lr, seed=seed, verbose=0)
    else:
        ttf.fine_tune(clf, train[:2], validation[:2], head_epochs=args.head_epochs,
                      fine_tune_epochs=args.fine_tune_epochs, unfreeze_blocks=args.unfreeze_blocks, seed=seed,
                      verbose=0)
    seconds = time.perf_counter() - tick
    predicted = clf.predict(test[0], verbose=0).argmax(axis=1)
    correct = predicted == test[1]
    tick = time.perf_counter()
    maps = ttf.grad_cam(clf, test[0][correct])
    cam_seconds = time.perf_counter() - tick
    hits = peak_inside(maps, test[2][correct])
    below = clf.backbone_spec.block_names[-2]
    hits_below = peak_inside(ttf.grad_cam(clf, test[0][correct], block=below), test[2][correct])
    if args.top_losses and not Path(args.top_losses, "top_losses.png").exists():
        from transfer_tf.evaluation.interpretation_plots import write_interpretation

        analysis = ttf.interpret(clf, test[:2])
        print(f"Wrote {write_interpretation(clf, analysis, Path(args.top_losses), k=8)['top_losses']}")
    return {"backbone": backbone, "weights": str(weights), "seed": seed, "accuracy": float(correct.mean()),
            "correct": int(correct.sum()), "peak_inside": float(hits.mean()) if len(hits) else float("nan"),
            "block_below": below, "peak_inside_block_below": float(hits_below.mean()) if len(hits) else float("nan"),
            "train_seconds": seconds, "grad_cam_ms_per_image": 1000 * cam_seconds / max(len(maps), 1)}, (
        test[0][correct][:8], maps[:8])


def save_picture(examples, path):
    from matplotlib.figure import Figure

    rows = [(name, image, heat) for name, (images, maps) in examples.items() for image, heat in zip(images, maps)]
    figure = Figure(figsize=(16, 2.2 * len(examples)), layout="constrained")
    axes = figure.subplots(len(examples), 8, squeeze=False)
    for ax in axes.reshape(-1):
        ax.axis("off")
    for n, (name, image, heat) in enumerate(rows):
        ax = axes[n // 8, n % 8]
        ax.imshow(image)
        ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if n % 8 == 0:
            ax.set_title(name, fontsize=9, loc="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50", "vgg16"])
    parser.add_argument("--weights", default=None,
                        help="weights for every backbone (default: ImageNet where offline, else none)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--unfreeze-blocks", type=int, default=1)
    parser.add_argument("--scratch-epochs", type=int, default=10, help="epochs of a random-weight base")
    parser.add_argument("--scratch-lr", type=float, default=1e-3)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--top-losses", help="write the first model's error analysis (top losses with Grad-CAM) "
                                             "of the test images here")
    args = parser.parse_args(argv)
    runs, examples = [], {}
    for backbone in args.backbones:
        spec = ttf.get_backbone(backbone)
        weights = args.weights or ("imagenet" if spec.imagenet_offline else None)
        for seed in args.seeds:
            record, example = run_one(backbone, weights, args, seed)
            runs.append(record)
            examples.setdefault(f"{backbone} ({weights or 'random'} weights)", example)
            print(f"{backbone} ({weights or 'random weights'}) seed {seed}: accuracy {record['accuracy']:.1%}, "
                  f"Grad-CAM peak inside the shape for {record['peak_inside']:.1%} of {record['correct']} "
                  f"correct test images ({record['grad_cam_ms_per_image']:.1f} ms per image); on block "
                  f"{record['block_below']}: {record['peak_inside_block_below']:.1%}")
    lines = ["| backbone | weights | test accuracy | peak inside the shape: last feature map | "
             "the block below it | Grad-CAM ms/image |", "|---|---|---|---|---|---|"]
    for backbone in args.backbones:
        chosen = [r for r in runs if r["backbone"] == backbone]
        lines.append(f"| {backbone} | {chosen[0]['weights']} | {statistics.mean(r['accuracy'] for r in chosen):.1%} "
                     f"| {statistics.mean(r['peak_inside'] for r in chosen):.1%} | "
                     f"{statistics.mean(r['peak_inside_block_below'] for r in chosen):.1%} "
                     f"({chosen[0]['block_below']}) | {statistics.median(r['grad_cam_ms_per_image'] for r in chosen):.1f} |")
    table = "\n".join(lines)
    print("\n" + table)
    save_picture(examples, Path(args.out).with_suffix(".png"))
    write_results(Path(args.out), "grad_cam.py", argv, {"runs": runs, "table": table})


if __name__ == "__main__":
    main()
