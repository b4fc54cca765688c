"""One traced graph that runs a model over batches of any size."""

import keras
import tensorflow as tf


def any_batch_spec(item_shape, dtype):
    """The input spec `batch_function` traces: batches of any size of items of `item_shape`."""
    return tf.TensorSpec((None, *item_shape), dtype)


def batch_function(model):
    """`run(batch)`: the model's outputs in inference mode as a NumPy array, one graph for every batch size.

    A `tf.function` (and Keras's `predict_on_batch`) traced on a full batch
    is traced again for the last, smaller batch of a dataset: for a whole
    network on a CPU that is seconds each time. This one is traced on its
    first call for an unknown batch size, which every later batch reuses.

    Args:
        model: `keras.Model` taking one image tensor.

    Returns:
        callable: `run(batch)` for arrays or tensors of shape `(n, ...)`;
        its `function` attribute is the `tf.function`.
    """
    function = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    traced = set()

    def run(batch):
        batch = tf.convert_to_tensor(batch)
        spec = any_batch_spec(batch.shape[1:], batch.dtype)
        if spec not in traced:
            function.get_concrete_function(spec)
            traced.add(spec)
        return keras.ops.convert_to_numpy(function(batch))

    run.function = function
    return run
