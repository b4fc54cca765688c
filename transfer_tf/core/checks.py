"""Argument checks shared by every module: each error says what was received.

Pure Python (no TensorFlow), so settings and the command line can use them
before anything heavy is imported.
"""

import numbers


def is_int(value):
    """Whether `value` is an integer (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """Whether `value` is a real number, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, *, minimum=0, optional=False):
    """Raises `ValueError` unless `value` is an int >= `minimum` (or `None` when `optional`)."""
    if optional and value is None:
        return
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"{name} must be an int >= {minimum}{' or None' if optional else ''}. "
            f"Received: {name}={value!r}")


def check_number(name, value, *, above=None, at_least=None, below=None, optional=False):
    """Raises `ValueError` unless `value` is a number in the given bounds (or `None` when `optional`).

    Args:
        above, at_least: exclusive and inclusive lower bounds.
        below: exclusive upper bound.
    """
    if optional and value is None:
        return
    fits = is_number(value) and (above is None or value > above) and (
        at_least is None or value >= at_least) and (below is None or value < below)
    if not fits:
        low = f"({above}" if above is not None else f"[{at_least}" if at_least is not None else None
        if low is not None and below is not None:
            bounds = f"in {low}, {below})"
        elif low is not None:
            bounds = f"a number > {above}" if above is not None else f"a number >= {at_least}"
        else:
            bounds = f"a number < {below}" if below is not None else "a number"
        raise ValueError(
            f"{name} must be {bounds}{' or None' if optional else ''}. Received: {name}={value!r}")


def check_choice(name, value, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}. Received: {name}={value!r}")


def normalise_image_size(image_size, spec=None):
    """Returns `image_size` as a `(height, width)` tuple, checked against a backbone record.

    With `spec=None` the size only has to be well formed and positive.

    Raises:
        ValueError: if the size is malformed or below the backbone's minimum.
    """
    size = (image_size, image_size) if is_int(image_size) else image_size
    try:
        height, width = (int(v) for v in size)
        well_formed = all(is_int(v) for v in size)
    except (TypeError, ValueError):
        well_formed = False
    if not well_formed or min(height, width) < 1:
        raise ValueError(
            "image_size must be a positive int or a (height, width) pair of them. "
            f"Received: image_size={image_size!r}"
        )
    if spec is not None and min(height, width) < spec.min_size:
        raise ValueError(
            f"image_size is below {spec.name}'s minimum of {spec.min_size} x "
            f"{spec.min_size} pixels. Use a larger size (its ImageNet weights were "
            f"trained at {spec.default_size}). Received: image_size={image_size!r}"
        )
    return height, width
