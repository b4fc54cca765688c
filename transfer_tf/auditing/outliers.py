"""Images far from every other image in feature space: a photo of something else, a blank frame, a screenshot.

The score is the mean cosine distance, on the base's pooled features with
their mean removed, to the `k` nearest images (byte copies excluded). An image is flagged when its score lies more than `MAD_LIMIT`
robust standard deviations (1.4826 x the median absolute deviation) above
the median, a rule that adapts to how spread out the folder's images are.
"""

import numpy as np

from transfer_tf.auditing.findings import Finding

MAD_LIMIT = 3.5
NEIGHBOURS = 5


def outlier_findings(readable, knn_distance, class_names, *, limit=MAD_LIMIT):
    """Findings of issue `outlier`; `score` is the k-NN distance."""
    if len(readable) < 3:
        return []
    median = float(np.median(knn_distance))
    spread = 1.4826 * float(np.median(np.abs(knn_distance - median)))
    cut = median + limit * max(spread, 1e-6)
    return [Finding(r.relative, "outlier", float(d), label=class_names[r.label], index=i,
                    detail=f"k-NN distance {d:.3f}, above {cut:.3f} (median {median:.3f})")
            for i, (r, d) in enumerate(zip(readable, knn_distance)) if d > cut]
