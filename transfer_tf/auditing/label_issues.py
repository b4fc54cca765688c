"""Files whose folder is probably the wrong class: confident learning on out-of-fold predictions.

A logistic regression on the standardised features is fitted K times, each
time predicting the fold it did not see (stratified, seeded), so every
image gets probabilities from a model that never saw its label. cleanlab's
`find_label_issues` (Northcutt et al., 2021) then flags the images whose
given label the model's calibrated noise estimates say is wrong, ranked by
self-confidence (the probability of the given label): the score is 1 minus
that, and the suggested label is the most probable class.
"""

import warnings

import numpy as np

from transfer_tf.auditing.findings import Finding

FOLDS = 5


def out_of_fold_probabilities(features, labels, *, folds=FOLDS, seed=0):
    """Class probabilities of each image from a classifier fitted on the other folds.

    Returns:
        `(probabilities, folds)`: float array `(n, num_classes)` over the
        classes present in `labels` (renumbered by `np.unique`), and the
        folds used (fewer than asked when a class is that small).

    Raises:
        ValueError: if a class has a single image (it cannot be held out).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes, encoded = np.unique(labels, return_inverse=True)
    smallest = np.bincount(encoded).min()
    if len(classes) < 2 or smallest < 2:
        raise ValueError("out-of-fold probabilities need two classes of at least two images each. Received: "
                         f"{len(classes)} class(es), the smallest with {smallest} image(s)")
    folds = int(min(folds, smallest))
    probabilities = np.zeros((len(labels), len(classes)), np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(features, encoded):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes on tiny folds
            model.fit(features[train], encoded[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(features[held_out])
    return probabilities, folds


def label_issue_findings(readable, features, class_names, *, folds=FOLDS, seed=0):
    """Findings of issue `label`, and every image's label-issue score (1 - p(given label)).

    Returns:
        `(findings, scores, note)`: `scores` is a float array `(n,)` (`None`
        when the ranking could not run), `note` says why not.
    """
    from cleanlab.filter import find_label_issues

    labels = np.array([r.label for r in readable])
    try:
        probabilities, folds = out_of_fold_probabilities(features, labels, folds=folds, seed=seed)
    except ValueError as error:
        return [], None, f"label issues not searched: {error}"
    classes, encoded = np.unique(labels, return_inverse=True)
    given = probabilities[np.arange(len(encoded)), encoded]
    scores = 1.0 - given
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(encoded, probabilities, return_indices_ranked_by="self_confidence")
    suggested = classes[probabilities.argmax(axis=1)]
    findings = [
        Finding(readable[i].relative, "label", float(scores[i]), label=class_names[labels[i]],
                suggested_label=class_names[suggested[i]], index=int(i),
                detail=f"p({class_names[labels[i]]}) = {given[i]:.2f}, p({class_names[suggested[i]]}) = "
                       f"{probabilities[i].max():.2f} out of fold")
        for i in flagged
    ]
    return findings, scores, f"{folds}-fold logistic regression, cleanlab find_label_issues"
