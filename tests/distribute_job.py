"""A training job that tests/test_distribute.py runs in processes of its own.

Each process gets its strategy before any other TensorFlow op, as a real job
would. It writes `RESULT/<name>.npz` (the final weights and the weights
before training) and `RESULT/<name>.json` (losses, chief or not).

    python distribute_job.py RESULT NAME --strategy none|mirrored|multi-worker|unpatched
        [--worker I --ports P0,P1] [--backbone resnet50] [--cache auto]
        [--backup DIR] [--kill-after-epoch N [--kill-worker I]] [--train-folder DATA OUT]

OUT may hold `{worker}`, the worker's index.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import transfer_tf  # noqa: F401  (first: it sets TensorFlow's CPU settings before TensorFlow loads)

IMAGES, CLASSES, SIZE = 64, 3, 32


def parse(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("result")
    parser.add_argument("name")
    parser.add_argument("--strategy", default="none")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--ports", default="")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--cache", default="auto")
    parser.add_argument("--backup")
    parser.add_argument("--kill-after-epoch", type=int)
    parser.add_argument("--kill-worker", type=int, help="the worker --kill-after-epoch ends (default: any)")
    parser.add_argument("--train-folder", nargs=2, metavar=("DATA", "OUT"))
    return parser.parse_args(argv)


def make_strategy(args):
    import tensorflow as tf

    if args.strategy == "mirrored":  # two replicas on one CPU
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    if args.strategy in ("multi-worker", "unpatched"):
        ports = args.ports.split(",")
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": args.worker}})
        from transfer_tf.model.distribute import make_strategy

        return make_strategy("multi-worker")
    return None


def arrays():
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(IMAGES) % CLASSES
    x = rng.uniform(0, 120, (IMAGES, SIZE, SIZE, 3)).astype("float32")
    x[np.arange(IMAGES), :, :, y] += 100  # the class shows in one colour channel
    return x, y


def main(argv=None):
    args = parse(argv)
    strategy = make_strategy(args)
    import keras
    import numpy as np
    import tensorflow as tf

    import transfer_tf as ttf
    from transfer_tf.model import distribute

    result = Path(args.result)
    summary = {"chief": distribute.is_chief(strategy)}
    if args.train_folder:
        from transfer_tf.cli.jobs import train_run

        data, out = args.train_folder[0], args.train_folder[1].format(worker=args.worker)
        _, _, record = train_run(data, out, backbone=args.backbone, weights=None, image_size=SIZE,
                                 head_epochs=1, fine_tune_epochs=1, batch_size=8, seed=0,
                                 validation_split=0.25, test_split=0.0, strategy=strategy, verbose=0)
        summary["loss"] = record.history["loss"]
        (result / f"{args.name}.json").write_text(json.dumps(summary))
        return 0
    x, y = arrays()
    classifier = ttf.ImageClassifier.from_backbone(
        args.backbone, num_classes=CLASSES, image_size=SIZE, weights=None, dropout=0.0, seed=1,
        strategy=strategy)
    before = [keras.ops.convert_to_numpy(w) for w in classifier.weights]

    class Kill(keras.callbacks.Callback):
        """Ends the process like a pre-empted machine. It runs before the backup's callbacks, so the
        epoch it ends is not backed up and the run resumes from the one before."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch == args.kill_after_epoch:
                os._exit(3)

    killed = args.kill_after_epoch is not None and args.kill_worker in (None, args.worker)
    callbacks = [Kill()] if killed else []
    if args.strategy == "unpatched":
        distribute.multi_worker_fit = lambda strategy: contextlib.nullcontext()
    try:
        record = ttf.fine_tune(classifier, (x, y), (x[:16], y[:16]), head_epochs=2, fine_tune_epochs=2,
                               batch_size=16, seed=3, head_lr=1e-3, fine_tune_lr=1e-4,
                               feature_cache=args.cache, backup_dir=args.backup, callbacks=callbacks,
                               strategy=strategy, verbose=0)
    except Exception as error:  # the unpatched run: report how Keras failed
        summary["error"] = f"{type(error).__name__}: {error}"[:2000]
        (result / f"{args.name}.json").write_text(json.dumps(summary))
        return 1
    after = [keras.ops.convert_to_numpy(w) for w in classifier.weights]
    paths = [w.path for w in classifier.weights]
    bn_stats = [w.path for layer in ttf.all_layers(classifier.base) if ttf.is_batchnorm(layer)
                for w in layer.non_trainable_weights]
    np.savez(result / f"{args.name}.npz", **{f"before/{i}": w for i, w in enumerate(before)},
             **{f"after/{i}": w for i, w in enumerate(after)})
    summary.update(loss=record.history["loss"], paths=paths, bn_stats=bn_stats,
                   trainable=[w.path for w in classifier.trainable_weights],
                   predictions=classifier.predict_on_batch(x[:10]).tolist(),
                   evaluated=ttf.evaluate(classifier, tf.data.Dataset.from_tensor_slices((x[:20], y[:20])).batch(8))[
                       "num_images"])
    (result / f"{args.name}.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
