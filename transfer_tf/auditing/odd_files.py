"""Files a training run would trip over or quietly mis-learn from: unreadable, ignored, tiny, stretched, gray, misnamed."""

from transfer_tf.auditing.findings import Finding

MIN_SIDE = 32
MAX_ASPECT = 4.0
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",),
               "WEBP": (".webp",)}


def odd_file_findings(readable, unusable, class_names):
    """Findings of issue `odd_file`, each with its reason in `detail`.

    Args:
        readable: list of `ImageFile` that decoded (their index is their position).
        unusable: list of `ImageFile` with a `problem` (unreadable, or ignored
            by the loader).
        class_names: list of str.
    """
    findings = [Finding(r.relative, "odd_file", 1.0, label=_label(r, class_names), detail=r.problem)
                for r in unusable]
    colour_share = 1 - sum(r.grayscale for r in readable) / max(len(readable), 1)
    for index, record in enumerate(readable):
        reasons = _reasons(record, colour_share)
        if reasons:
            score = max(score for score, _ in reasons)
            findings.append(Finding(record.relative, "odd_file", score, label=_label(record, class_names),
                                    detail="; ".join(text for _, text in reasons), index=index))
    return findings


def _reasons(record, colour_share):
    reasons = []
    side = min(record.width, record.height)
    if side < MIN_SIDE:
        reasons.append((0.9 - 0.4 * side / MIN_SIDE, f"tiny: {record.width} x {record.height} pixels"))
    aspect = max(record.width, record.height) / max(side, 1)
    if aspect > MAX_ASPECT:
        reasons.append((min(0.9, 0.5 + aspect / 40), f"extreme aspect ratio {aspect:.1f}:1 "
                        f"({record.width} x {record.height}); resizing distorts it"))
    if record.grayscale and colour_share >= 0.5:
        reasons.append((0.4 + 0.4 * colour_share, f"grayscale in a set that is {colour_share:.0%} colour"))
    if record.format and record.path.suffix.lower() not in _EXTENSIONS.get(record.format, ()):
        reasons.append((0.6, f"a {record.format} file named {record.path.suffix or '(no extension)'}"))
    return reasons


def _label(record, class_names):
    return class_names[record.label] if record.label is not None else ""
