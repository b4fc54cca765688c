"""Copies of one image: byte-identical files, near-identical images, and what they reveal (conflicting labels, leakage).

Exact duplicates share a SHA-256 of their bytes. Near duplicates are images
whose signatures (16 x 16 grayscale, zero-mean, unit length: `scan.signature`)
correlate at or above the threshold (0.998 by default): the same photo
re-encoded, resized, brightened. Measured before choosing
(`benchmarks/audit.py`'s copies: JPEG quality 70 at 90 % size, brightened):
such copies correlated at 0.998 or more (99 % of them on ELPV, all on
sign-language digits), distinct digit photos at most 0.979, and distinct
but look-alike ELPV solar cells up to 0.998 (1 % of such pairs above it).
The base's pooled features were no good at
this: a JPEG re-encoding moved them further (cosine down to 0.40 after
centring) than two different photos of one set are apart. Crops are not
caught by either. Connected pairs form groups, so a chain of near copies is
one group. A group of copies carrying different labels is a `conflict`;
one whose copies sit in different splits is `leakage` (a validation or test
image the model has, in effect, trained on).
"""

from transfer_tf.auditing.findings import Finding
from transfer_tf.auditing.neighbours import connected_groups


def duplicate_findings(readable, pairs, class_names):
    """Findings of issues `duplicate`, `near_duplicate`, `conflict` and `leakage`.

    Args:
        readable: list of `ImageFile` (their index is their position).
        pairs: `(i, j, similarity)` at or above the near-duplicate threshold.
        class_names: list of str.
    """
    by_hash = {}
    for index, record in enumerate(readable):
        by_hash.setdefault(record.sha256, []).append(index)
    exact = sorted((members for members in by_hash.values() if len(members) > 1), key=lambda g: g[0])
    similarity = {}
    for i, j, value in pairs:
        if readable[i].sha256 != readable[j].sha256:
            similarity[i] = max(similarity.get(i, 0.0), value)
            similarity[j] = max(similarity.get(j, 0.0), value)
    near = [g for g in connected_groups(len(readable), pairs) if len({readable[i].sha256 for i in g}) > 1]
    findings = []
    for kind, prefix, groups in (("duplicate", "d", exact), ("near_duplicate", "n", near)):
        for number, members in enumerate(groups, 1):
            group = f"{prefix}{number}"
            scores = {i: 1.0 if kind == "duplicate" else similarity.get(i, 0.0) for i in members}
            findings += _group_findings(readable, members, group, kind, scores, class_names)
    return findings


def _group_findings(readable, members, group, kind, scores, class_names):
    records = [readable[i] for i in members]
    labels = sorted({class_names[r.label] for r in records})
    splits = sorted({r.split for r in records if r.split})
    copies = "identical files" if kind == "duplicate" else "near-identical images"
    issues = [(kind, f"{len(members)} {copies}")]
    if len(labels) > 1:
        issues.append(("conflict", f"{copies} labelled {', '.join(labels)}"))
    if len(splits) > 1:
        issues.append(("leakage", f"{copies} in the {', '.join(splits)} splits"))
    return [Finding(readable[i].relative, issue, scores[i], group=group, label=class_names[readable[i].label],
                    detail=detail, index=i, split=readable[i].split or "")
            for issue, detail in issues for i in members]
