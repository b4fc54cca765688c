"""The classification head: a small model of its own over base features.

The head knows nothing of the backbone but the shape of its feature map, so
it can be trained on features computed once and cached.
"""

import keras

from transfer_tf.core.checks import check_choice, check_int, check_number, is_int
from transfer_tf.core.choices import POOLINGS, TASKS


def output_units(task, num_classes):
    """Returns the number of output units for a task.

    Multi-class and multi-label heads have one unit per class; a binary head
    has one sigmoid unit for the positive (second) class.
    """
    return 1 if task == "binary" else num_classes


def validate_head_args(*, task, num_classes, pooling, dropout, hidden_units):
    """Raises `ValueError` if any head argument is out of range."""
    check_choice("task", task, TASKS)
    check_int("num_classes", num_classes, minimum=1)
    if task == "binary" and num_classes != 2:
        raise ValueError(
            "A binary task has exactly 2 classes (one sigmoid output for the "
            f"second). Received: num_classes={num_classes}"
        )
    if task != "binary" and num_classes < 2:
        raise ValueError(
            f"A {task} task needs at least 2 classes. Received: num_classes={num_classes}"
        )
    check_choice("pooling", pooling, POOLINGS)
    check_number("dropout", dropout, at_least=0, below=1)
    if any(not is_int(u) or u < 1 for u in hidden_units):
        raise ValueError(
            "hidden_units must be positive integers. "
            f"Received: hidden_units={tuple(hidden_units)!r}"
        )


def build_head(
    feature_shape,
    num_classes,
    *,
    task="multiclass",
    pooling="avg",
    dropout=0.2,
    hidden_units=(),
    name="head",
):
    """Builds the head: pooling -> dropout -> optional dense layers -> output.

    Args:
        feature_shape: tuple. Shape of one base feature map, `(h, w, c)`.
        num_classes: int. The number of classes.
        task: str. `"multiclass"` (softmax), `"binary"` (one sigmoid) or
            `"multilabel"` (one sigmoid per class). Defaults to `"multiclass"`.
        pooling: str. `"avg"` or `"max"` global pooling. Defaults to `"avg"`.
        dropout: float. Dropout rate before each dense layer. Defaults to `0.2`.
        hidden_units: tuple of int. Sizes of dense ReLU layers between pooling
            and the output. Defaults to `()`.
        name: str. The model's name. Defaults to `"head"`.

    Returns:
        A functional `keras.Model` from features to probabilities.

    Raises:
        ValueError: if an argument is out of range.
    """
    hidden_units = tuple(hidden_units)
    validate_head_args(
        task=task, num_classes=num_classes, pooling=pooling,
        dropout=dropout, hidden_units=hidden_units,
    )
    features = keras.Input(shape=tuple(feature_shape), name="features")
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name=f"{pooling}_pool")(features)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    activation = "softmax" if task == "multiclass" else "sigmoid"
    # float32 output keeps probabilities exact under a mixed-precision policy.
    outputs = keras.layers.Dense(
        output_units(task, num_classes), activation=activation,
        dtype="float32", name="predictions",
    )(x)
    return keras.Model(features, outputs, name=name)
