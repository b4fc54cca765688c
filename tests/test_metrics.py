"""Metrics against values worked out by hand on small fixed predictions."""

import json

import numpy as np
import pytest

from transfer_tf.evaluation.predictions import format_metrics
from transfer_tf.evaluation.metrics import classification_metrics

# Five images, three classes. Predicted (argmax): a, b, c, a, b; true: a, b, c, c, b.
LABELS = [0, 1, 2, 2, 1]
SCORES = [[.7, .2, .1], [.1, .5, .4], [.2, .3, .5], [.6, .1, .3], [.3, .4, .3]]


def test_multiclass_metrics_match_hand_computed_values():
    m = classification_metrics(LABELS, SCORES, ["a", "b", "c"], top_k=(2, 3))
    assert m["num_images"] == 5 and m["class_names"] == ["a", "b", "c"]
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    # The fourth image (true c) has c second: in the top 2 though not the top 1.
    assert m["top_k_accuracy"] == {"2": pytest.approx(1.0)}  # k=3 is not below 3 classes
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_matrix_normalized"] == [[1, 0, 0], [0, 1, 0], [0.5, 0, 0.5]]
    a, b, c = (m["per_class"][n] for n in "abc")
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((0.5, 1, 2 / 3, 1))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((1, 1, 1, 2))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((1, 0.5, 2 / 3, 2))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((1 * 2 / 3 + 2 * 1 + 2 * 2 / 3) / 5)
    # One-vs-rest AUC of c: positives score .5 and .3, negatives .1, .4, .3 -> 4.5 of 6 pairs.
    assert (a["roc_auc"], b["roc_auc"], c["roc_auc"]) == pytest.approx((1, 1, 0.75))
    assert m["roc_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert json.loads(json.dumps(m)) == m


def test_binary_metrics_and_auc():
    positive = np.array([.2, .8, .4, .6])
    m = classification_metrics([0, 1, 1, 0], np.stack([1 - positive, positive], 1),
                               ["ok", "defect"], task="binary")
    assert m["accuracy"] == pytest.approx(0.5)
    # Positives .8 and .4 against negatives .2 and .6: 3 of 4 pairs ranked right.
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["per_class"]["defect"]["roc_auc"] == pytest.approx(0.75)
    assert m["top_k_accuracy"] == {}
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]


def test_auc_is_none_where_undefined():
    m = classification_metrics([0, 0], [[.9, .1], [.4, .6]], ["ok", "defect"], task="binary")
    assert m["roc_auc"] is None and m["per_class"]["ok"]["roc_auc"] is None
    assert m["per_class"]["defect"]["support"] == 0
    assert m["balanced_accuracy"] == pytest.approx(0.5)  # over the one class present
    assert "n/a" in format_metrics(m)


def test_multilabel_metrics_match_hand_computed_values():
    truth = [[1, 0], [0, 1], [1, 1]]
    scores = [[.9, .2], [.4, .7], [.6, .3]]  # predicted: [1, 0], [0, 1], [1, 0]
    m = classification_metrics(truth, scores, ["x", "y"], task="multilabel")
    assert m["subset_accuracy"] == pytest.approx(2 / 3)
    assert m["label_accuracy"] == pytest.approx(5 / 6)
    assert m["micro_f1"] == pytest.approx(6 / 7)  # TP 3, FP 0, FN 1
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["samples_f1"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert m["per_class"]["y"]["recall"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["label_confusion"] == [[[1, 0], [0, 2]], [[1, 0], [1, 1]]]
    assert "subset accuracy 66.7%" in format_metrics(m)


def test_format_metrics_prints_headline_table_and_matrix():
    text = format_metrics(classification_metrics(LABELS, SCORES, ["a", "b", "c"], top_k=(2,)))
    assert "5 images: accuracy 80.0%, balanced accuracy 83.3%, top-2 100.0%" in text
    assert "macro 0.778" in text and "roc-auc" in text
    assert text.splitlines()[-1].split() == ["c", "1", "0", "1"]


@pytest.mark.parametrize("labels, scores, task, message", [
    ([0, 1], [[.5, .5], [.5, .5]], "ranking", "task must be one of"),
    ([0, 1], [[.5, .5, 0], [.5, .5, 0]], "multiclass", "scores must have shape (num_images, 2)"),
    ([0, 1, 0], [[.5, .5], [.5, .5]], "multiclass", "labels must have shape (2,)"),
    ([0, 2], [[.5, .5], [.5, .5]], "multiclass", "labels must be class indices 0..1"),
    ([[0, 2], [1, 0]], [[.5, .5], [.5, .5]], "multilabel", "labels must be 0 or 1"),
    ([], np.zeros((0, 2)), "multiclass", "no predictions"),
])
def test_bad_inputs_say_what_was_received(labels, scores, task, message):
    with pytest.raises(ValueError, match="Received|no predictions") as error:
        classification_metrics(labels, scores, ["a", "b"], task=task)
    assert message in str(error.value)
