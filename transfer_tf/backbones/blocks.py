"""A backbone's blocks: naming groups of its layers, finding them in a built base, and cutting the base between them.

A block is a resolution stage of the network (VGG16 `block1`..`block5`,
ResNet50 `conv1`..`conv5`), so "unfreeze the top N blocks" means the same
thing for every backbone: the last N stages, the ones closest to the output.
"""

import dataclasses
import re

import keras


@dataclasses.dataclass(frozen=True)
class Block:
    """A named group of consecutive layers of a backbone.

    A block ends at the last layer whose name fully matches `ends_at`, or
    just before the first layer whose name fully matches `ends_before` (for
    backbones whose stage outputs have automatically generated names, such as
    Xception's residual `add` layers). The last block of a backbone sets
    neither: it ends at the backbone's output.

    Args:
        name: str. The block's name, e.g. `"block5"`.
        ends_at: str or `None`. Regular expression for the block's last layer.
        ends_before: str or `None`. Regular expression for the first layer of
            the next block.
    """

    name: str
    ends_at: str | None = None
    ends_before: str | None = None


def block_layers(base, spec, blocks=None):
    """Groups the layers of a built base into the blocks of its record.

    Layers are taken in the order of `base.layers` (topological order), so a
    block is a contiguous run of layers and its last layer is the block's
    output.

    Args:
        base: `keras.Model`. A base built from `spec`.
        spec: `BackboneSpec`.
        blocks: tuple of `Block` or `None`. Another map of the same base
            (`unit_blocks`); defaults to `spec.blocks`.

    Returns:
        A dict from block name to the list of its layers, input to output.

    Raises:
        ValueError: if a block's boundary layer is not found in `base` (the
            record does not fit the model).
    """
    layers = base.layers
    names = [layer.name for layer in layers]
    groups = {}
    start = 0
    for block in spec.blocks if blocks is None else blocks:
        if block.ends_at is not None:
            matches = [i for i, n in enumerate(names) if re.fullmatch(block.ends_at, n)]
            end = matches[-1] + 1 if matches else None
        elif block.ends_before is not None:
            matches = [i for i, n in enumerate(names) if re.fullmatch(block.ends_before, n)]
            end = matches[0] if matches else None
        else:
            end = len(layers)
        if end is None or end <= start:
            raise ValueError(
                f"Block {block.name!r} of backbone {spec.name!r} has no boundary "
                f"layer in this model (pattern {block.ends_at or block.ends_before!r})."
            )
        groups[block.name] = layers[start:end]
        start = end
    return groups


def split_base(base, spec, first_top_block):
    """Splits a base into a bottom and a top model at a block boundary.

    `top(bottom(x))` computes `base(x)`. With the top blocks unfrozen and the
    rest frozen, the bottom's output is fixed for fixed inputs, which is what
    makes caching it possible.

    Args:
        base: `keras.Model`. A base built from `spec`.
        spec: `BackboneSpec`.
        first_top_block: str. The first block of the top model (not the
            first block of the backbone), or a unit of its last block
            (`unit_blocks`).

    Returns:
        A tuple `(bottom, top)` of `keras.Model`.

    Raises:
        ValueError: if `first_top_block` is not a block of `spec` after its
            first one, nor a unit of its last block.
    """
    blocks = block_map(base, spec, first_top_block)
    if blocks is None or first_top_block == blocks[0].name:
        units = unit_names(base, spec)
        raise ValueError(
            f"first_top_block must be one of {list(spec.block_names[1:])}"
            + (f" or a unit of the last block {units}" if units else "")
            + f". Received: first_top_block={first_top_block!r}"
        )
    groups = block_layers(base, spec, blocks)
    boundary = groups[first_top_block][0].input
    bottom = keras.Model(base.input, boundary, name=f"{base.name}_bottom")
    top = keras.Model(boundary, base.output, name=f"{base.name}_top")
    return bottom, top


def unit_blocks(base, spec):
    """The blocks of `spec` with the last one split into its units, found in a built base.

    A unit is a residual unit (ResNet's `conv5_block3`), an MBConv unit
    (EfficientNet's `block6d`) or a convolution (VGG's `block5_conv3`): the
    layers of the last block whose names `spec.unit_pattern` matches with
    the same first group; a layer it does not match (a final convolution,
    pooling) stays with the unit before it. Training the top unit alone is
    the cheap end of fine-tuning: ResNet50's conv5 holds 15 of its 23.6 M
    weights, its last unit 4.5 M.

    Returns:
        tuple of `Block`: the blocks before the last, then the units.
        Without a `unit_pattern`, `spec.blocks`.
    """
    if spec.unit_pattern is None:
        return spec.blocks
    last = block_layers(base, spec)[spec.blocks[-1].name]
    units = {}  # unit name -> its last layer's name
    current = None
    for layer in last:
        match = re.match(spec.unit_pattern, layer.name)
        current = match.group(1) if match else current
        if current is not None:
            units[current] = layer.name
    names = list(units)
    if len(names) < 2:  # nothing to split
        return spec.blocks
    return spec.blocks[:-1] + tuple(Block(name, ends_at=re.escape(units[name])) for name in names[:-1]) + (
        Block(names[-1]),)


def unit_names(base, spec):
    """The names of the units of the last block (`unit_blocks`), or `[]` when it is not split."""
    blocks = unit_blocks(base, spec)
    return [] if blocks is spec.blocks else [block.name for block in blocks[len(spec.blocks) - 1:]]


def block_map(base, spec, name):
    """The map of blocks that names `name`: `spec.blocks`, `unit_blocks` for a unit, or `None`."""
    if name in spec.block_names:
        return spec.blocks
    units = unit_blocks(base, spec)
    return units if name in [block.name for block in units] else None
