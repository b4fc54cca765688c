"""LogME and the linear probe: scores of frozen features for a task, checked against hand computations."""

import json
import types

import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.methods.transferability import fitted_evidence, linear_probe_accuracy, logme


def _gaussian_log_evidence(features, target, alpha, beta):
    """log N(target; 0, I / beta + F F^T / alpha), computed directly (Bishop, eq. 3.86's other form)."""
    n = len(target)
    covariance = np.eye(n) / beta + features @ features.T / alpha
    _, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (n * np.log(2 * np.pi) + log_det + target @ np.linalg.solve(covariance, target))


def _separable(n_per_class, classes, dims, spread, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)) * 3
    labels = np.repeat(np.arange(classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), dims)), labels


def test_logme_is_the_maximised_marginal_likelihood_of_a_bayesian_linear_model():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    target = features @ rng.normal(size=5) + 0.3 * rng.normal(size=40)
    evidence, alpha, beta = fitted_evidence(features, target)
    best = _gaussian_log_evidence(features, target, alpha, beta)
    assert evidence * 40 == pytest.approx(best, rel=1e-8)
    for a, b in [(alpha * 2, beta), (alpha / 2, beta), (alpha, beta * 2), (alpha, beta / 2)]:
        assert _gaussian_log_evidence(features, target, a, b) < best  # a maximum, not any point


def test_logme_averages_the_one_hot_targets_of_the_classes():
    features, labels = _separable(10, 3, 4, spread=1.0)
    per_class = [fitted_evidence(features, (labels == c).astype(float))[0] for c in range(3)]
    assert logme(features, labels) == pytest.approx(np.mean(per_class))


def test_separable_features_score_above_noise_on_both_scores():
    clean, labels = _separable(20, 3, 8, spread=0.5)
    noise = np.random.default_rng(1).normal(size=clean.shape)
    good, bad = ttf.transferability(clean, labels), ttf.transferability(noise, labels)
    assert good.logme > bad.logme
    assert good.linear_probe > 0.95 and bad.linear_probe < 0.6
    assert good.num_images == 60 and good.num_features == 8
    blurred, _ = _separable(20, 3, 8, spread=3.0)  # the same classes, further apart from their centres
    assert logme(clean, labels) > logme(blurred, labels) > bad.logme


def test_features_from_extract_features_bring_their_labels():
    features, labels = _separable(6, 2, 3, spread=0.5)
    extracted = types.SimpleNamespace(features=features, labels=labels)
    assert ttf.transferability(extracted, None, linear_probe=False) == ttf.transferability(
        features, labels, linear_probe=False)


def test_bad_inputs_are_refused_with_what_was_received():
    features, labels = _separable(4, 2, 3, spread=0.5)
    with pytest.raises(ValueError, match="at least two classes"):
        logme(features, np.zeros(8))
    with pytest.raises(ValueError, match="8 feature vectors and 7 labels"):
        logme(features, labels[:7])
    with pytest.raises(ValueError, match=r"Received: features.shape=\(8, 3, 1\)"):
        logme(features[..., None], labels)
    with pytest.raises(ValueError, match="smallest class has 4. .*Received: folds=5"):
        linear_probe_accuracy(features, labels)


def test_rank_bases_scores_each_candidate_on_the_training_images_only(tmp_path, capsys):
    from transfer_tf import cli
    from transfer_tf.methods.base_ranking import default_candidates

    from image_files import write_class_folder

    folder = tmp_path / "shades"
    write_class_folder(folder, ["dark", "mid", "light"], per_class=12)
    candidates = [("vgg16", 32), ("mobilenetv3small", 32)]
    rows = ttf.rank_bases(folder, candidates=candidates, weights=None, validation_split=0.25, verbose=False)
    splits = ttf.data.from_directory(folder, image_size=32, validation_split=0.25, verbose=False)
    assert sorted((r.backbone, r.image_size) for r in rows) == sorted(candidates)
    assert [r.logme for r in rows] == sorted((r.logme for r in rows), reverse=True)
    assert all(r.num_images == len(splits.files["train"]) < 36 for r in rows)
    assert all(0 <= r.linear_probe <= 1 and r.seconds > 0 for r in rows)
    assert ("efficientnet_lite0", 224) in default_candidates() and ("efficientnet_lite0", 128) in default_candidates()

    assert cli.main(["rank-bases", str(folder), "--candidates", "vgg16:32", "--weights", "none",
                     "--no-linear-probe", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(p["backbone"], p["image_size"], p["linear_probe"]) for p in printed] == [("vgg16", 32, None)]
    assert cli.main(["rank-bases", str(folder), "--candidates", "vgg16:16", "--weights", "none"]) == 1
    assert "at least 32 px. Received: image_size=16" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Received: candidates=\\[\\]"):
        ttf.rank_bases(folder, candidates=[])

    few = tmp_path / "few"
    write_class_folder(few, ["a", "b"], per_class=4)  # 3 training images a class: too few for 5 folds
    capsys.readouterr()
    rows = ttf.rank_bases(few, candidates=[("vgg16", 32)], weights=None, validation_split=0.25)
    assert rows[0].linear_probe is None and "No linear probe" in capsys.readouterr().out
    with pytest.raises(ValueError, match="smallest class has 3. Rank by LogME"):
        ttf.rank_bases(few, candidates=[("vgg16", 32)], weights=None, validation_split=0.25,
                       ranked_by="linear_probe")
