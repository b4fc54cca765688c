"""Which layers of a base train in each phase.

BatchNormalization layers never update their moving statistics: the base is
called with `training=False` and, in addition, every BatchNormalization layer
is made non-trainable unless `train_bn` asks for its scale and offset (gamma
and beta) to train. On Keras 3.15 `training=False` alone is not a guarantee
for a nested functional base, hence both.
"""

import keras

from transfer_tf.backbones.blocks import block_layers, block_map, unit_names
from transfer_tf.core.checks import is_int


def all_layers(model):
    """Yields every layer of `model`, descending into nested models."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def freeze_base(classifier):
    """Makes the whole base non-trainable (phase 1: train the head only)."""
    classifier.base.trainable = False


def blocks_to_unfreeze(classifier, unfreeze_blocks):
    """Returns the names of the top `unfreeze_blocks` blocks of the base.

    Args:
        classifier: `ImageClassifier`.
        unfreeze_blocks: int, `"all"`, or the name of a block or of a unit
            of the last block (`blocks.unit_blocks`): that one and those
            above it. `0` unfreezes nothing.

    Raises:
        ValueError: if `unfreeze_blocks` is not `"all"`, an int in
            `[0, number of blocks]` or a block or unit of the base, or the
            base has no block map (a custom base) and `unfreeze_blocks` is
            neither `0` nor `"all"`.
    """
    spec = classifier.backbone_spec
    if unfreeze_blocks == "all":
        return spec.block_names if spec else ("all",)
    if isinstance(unfreeze_blocks, str) and spec is not None:  # a block or unit: it and those above it
        blocks = block_map(classifier.base, spec, unfreeze_blocks)
        if blocks is not None:
            names = [block.name for block in blocks]
            return tuple(names[names.index(unfreeze_blocks):])
    if spec is None:
        if unfreeze_blocks == 0:
            return ()
        raise ValueError(
            "This classifier's base is not a registered backbone, so it has no "
            "blocks: use unfreeze_blocks=0 or 'all'. "
            f"Received: unfreeze_blocks={unfreeze_blocks!r}"
        )
    count = len(spec.blocks)
    if not is_int(unfreeze_blocks) or not 0 <= unfreeze_blocks <= count:
        units = unit_names(classifier.base, spec)
        in_units = f"; or a unit of its last block: {', '.join(units)}" if units else ""
        raise ValueError(
            f"unfreeze_blocks must be 'all', an int from 0 to {count} ({spec.name} "
            f"has blocks {', '.join(spec.block_names)}), or a block's name{in_units}. "
            f"Received: unfreeze_blocks={unfreeze_blocks!r}"
        )
    return spec.block_names[count - unfreeze_blocks:]


def unfreeze_top_blocks(classifier, unfreeze_blocks, *, train_bn=False):
    """Makes the top blocks of the base trainable (phase 2).

    Args:
        classifier: `ImageClassifier`.
        unfreeze_blocks: int, `"all"` or a block or unit name. How many
            blocks, counted from the output, become trainable, or from which
            one (`blocks_to_unfreeze`).
        train_bn: bool. Whether BatchNormalization layers in those blocks train
            their gamma and beta. Their moving statistics stay fixed either
            way. Defaults to `False`.

    Returns:
        The names of the unfrozen blocks, input side first.
    """
    names = blocks_to_unfreeze(classifier, unfreeze_blocks)
    base = classifier.base
    if not names:
        base.trainable = False
        return ()
    base.trainable = True
    if unfreeze_blocks != "all":
        groups = block_layers(base, classifier.backbone_spec, block_map(base, classifier.backbone_spec, names[0]))
        for block_name, layers in groups.items():
            for layer in layers:
                layer.trainable = block_name in names
    for layer in all_layers(base):
        if is_batchnorm(layer):
            # The `trainable` setter reaches nested layers, so a BN's own
            # flag already says whether it sits in an unfrozen block.
            layer.trainable = train_bn and layer.trainable
    return tuple(names)
