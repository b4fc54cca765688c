"""Training under `tf.distribute`: several GPUs (`MirroredStrategy`) and several workers.

Every trainer takes `strategy=`. The classifier is built in the strategy's
scope (`ImageClassifier.from_backbone(..., strategy=...)`), and the trainer
runs in it: the models of each phase, every `compile` and both `fit` calls.
Every dataset is sharded by element (`AutoShardPolicy.DATA`, set explicitly:
transfer_tf's datasets are made from tensors or cached arrays, so there are
no files to shard by). Batch sizes are global: `batch_size=64` on two
replicas runs 32 images on each. Only the chief writes run folders, reports
and exports (after training, from a copy of the model outside the strategy,
so it needs no other worker); a backup folder is written by the chief and
read by every worker (so it must be on storage they share, as with Keras's
own `BackupAndRestore`).

Keras 3.15's `fit` does not run under `MultiWorkerMirroredStrategy`
(https://github.com/keras-team/keras/issues/20585, closed upstream as
unsupported): two reductions in `keras/src/backend/tensorflow/trainer.py`
fail there. `multi_worker_fit` fixes exactly those two, for that strategy
only and only while a `fit` runs: `_maybe_symbolic_build` takes each leaf of
a sample batch from the first replica (TensorFlow's `reduce` takes no nested
structure, and building needs only shapes), and `reduce_per_replica` reduces
with `axis=None` (its `axis=0` fails on scalar metrics).
`tests/test_distribute.py` checks that the unpatched Keras still fails (so
an upgrade that fixes it fails a test, and this fix can go) and that two
workers train to identical weights with it.
"""

import contextlib
import os
import warnings

import keras
import tensorflow as tf

from transfer_tf.data.pipeline import advance_shuffle, recipe_of

KERAS_ISSUE = "https://github.com/keras-team/keras/issues/20585"
KERAS_VERIFIED = "3.15"  # the Keras version the multi-worker fix was checked on
STRATEGIES = ("mirrored", "multi-worker")


def make_strategy(name):
    """A strategy by name, for the command line and scripts.

    Create it first thing: `MultiWorkerMirroredStrategy` must exist before
    any other TensorFlow op runs.

    Args:
        name: str or `None`. `"mirrored"` (every GPU of this machine, or its
            CPU), `"multi-worker"` (the cluster in the `TF_CONFIG`
            environment variable), or `None` (no strategy).

    Returns:
        A `tf.distribute.Strategy`, or `None`.

    Raises:
        ValueError: for an unknown name, or `"multi-worker"` without
            `TF_CONFIG`.
    """
    if name is None:
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy='multi-worker' reads the cluster from the TF_CONFIG environment variable, "
                "which is not set (see the README, 'Several GPUs, several workers'). "
                "Received: strategy='multi-worker'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)} or None. Received: strategy={name!r}")


def is_multi_worker(strategy):
    """Whether `strategy` spans several worker processes."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode())


def is_chief(strategy):
    """Whether this process writes run folders, reports, exports and backups (always, without a cluster)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def worker_name(strategy):
    """`"worker_1"` and the like in a cluster, `""` otherwise."""
    if not is_multi_worker(strategy):
        return ""
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}_{resolver.task_id}"


def barrier(strategy):
    """Waits until every worker got here (a one-number all-reduce); does nothing without a cluster.

    For a file the chief removes or writes before the others read.
    """
    if is_multi_worker(strategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def scope(strategy):
    """`strategy.scope()`, or no scope for `None`."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def strategy_for(model, strategy):
    """The strategy a trainer runs `model` under: `strategy`, else the one it was built in.

    Raises:
        ValueError: if `strategy` is given and `model` was built in another
            strategy's scope or in none (its variables would then live on
            one device).
    """
    built_in = getattr(model, "_distribute_strategy", None)  # Keras records the scope a model is made in
    if strategy is None or built_in is strategy:
        return built_in
    raise ValueError(
        "The classifier was not built in this strategy's scope, so its variables are not "
        "replicated. Build it with ImageClassifier.from_backbone(..., strategy=strategy) or "
        "transfer_tf.load(..., strategy=strategy), or inside `with strategy.scope():`. "
        f"Received: strategy={type(strategy).__name__}, a classifier built under "
        f"{type(built_in).__name__ if built_in is not None else 'no strategy'}")


def sharded(dataset, strategy):
    """The dataset sharded by element across workers (an explicit `AutoShardPolicy.DATA`).

    Every worker runs the whole pipeline and keeps its share of each global
    batch, so every worker must draw the same shuffle order: a seeded shuffle
    (`check_same_order`).
    """
    if strategy is None or dataset is None:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def check_same_order(strategy, datasets):
    """Raises `ValueError` if several workers would shuffle one of `datasets` differently.

    Each worker keeps its share of every global batch, so all must draw the
    same order. Checked for datasets transfer_tf built; a `tf.data`
    pipeline of your own needs a seeded shuffle.
    """
    if not is_multi_worker(strategy):
        return
    for name, dataset in datasets.items():
        recipe = recipe_of(dataset)
        if recipe is not None and not recipe.seeded:
            raise ValueError(
                f"Several workers split each global batch between them, so they must shuffle {name} "
                "in the same order; it was shuffled without a seed. Set one (seed=... for arrays, the "
                "loader's seed=... for ttf.data datasets, --seed on the command line). "
                "Received: seed=None")


def draw_build_order(dataset, strategy):
    """Draws the shuffle order that Keras's `fit` draws under a strategy, when there is none.

    Under a strategy, every `fit` first takes a batch from a fresh iterator to
    build the model (`_maybe_symbolic_build`), which draws one order from a
    reshuffling dataset; without one it does not. Drawing it here too gives a
    run the same batches, epoch by epoch, with or without a strategy.
    """
    if strategy is None:
        advance_shuffle(dataset, 1)


def replica_share(loss):
    """A replica's loss scaled so that the gradients summed over replicas are those of the mean.

    Keras scales its compiled losses this way; a `train_step` that adds a
    loss of its own scales it with this.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


def whole_loss(loss):
    """Undoes `replica_share`, for reporting the loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * replicas if replicas > 1 else loss


@contextlib.contextmanager
def multi_worker_fit(strategy):
    """Fixes Keras's two multi-worker reductions while a fit runs (see the module's docstring).

    Does nothing for any other strategy. Warns once on a Keras version other
    than the one it was verified on.
    """
    if not is_multi_worker(strategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as keras_trainer

    _warn_if_unverified()
    trainer_class = keras_trainer.TensorFlowTrainer
    original_build = trainer_class._maybe_symbolic_build
    original_reduce = keras_trainer.reduce_per_replica

    def first_replica(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(first_replica, next(batches))
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and keras_trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer_class._maybe_symbolic_build = maybe_symbolic_build
    keras_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer_class._maybe_symbolic_build = original_build
        keras_trainer.reduce_per_replica = original_reduce


_warned = []


def _warn_if_unverified():
    version = ".".join(keras.__version__.split(".")[:2])
    if version != KERAS_VERIFIED and not _warned:
        _warned.append(version)
        warnings.warn(
            f"transfer_tf's fix of Keras's multi-worker fit ({KERAS_ISSUE}) was verified on Keras "
            f"{KERAS_VERIFIED}; this is Keras {keras.__version__}. tests/test_distribute.py tells "
            "whether the fix still applies.", stacklevel=3)
