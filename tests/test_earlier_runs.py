"""What earlier versions wrote still works: public names, and run folders saved by transfer_tf 0.1.0.

The run folders under `tests/fixtures/` were written by the code before its
modules moved into subpackages (`tests/fixtures/make_earlier_runs.py`), with
the predictions that code made on `probe_images.npy`.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import transfer_tf as ttf

FIXTURES = Path(__file__).parent / "fixtures"

# Every name `import transfer_tf as ttf` offered in 0.1.0, before the restructuring.
PUBLIC_NAMES_0_1_0 = [
    "BackboneSpec", "Block", "ComparisonResult", "DataSettings", "EstimatorClassifier", "ExportResult",
    "FineTuneResult", "FineTuneSettings", "FlexOpsRequiredError", "ImageClassifier", "ImagePreprocessing",
    "LRFinderResult", "ModelSettings", "PhaseResult", "Predictions", "PretrainResult", "ScratchSettings",
    "TFLiteConfig", "WeightsNotAvailableError", "adapt", "all_layers", "batchnorm_statistics", "block_layers",
    "build_head", "classification_metrics", "compare", "cpu_summary", "data", "evaluate", "export",
    "extract_features", "find_lr", "fine_tune", "fit_classical", "float32_copy", "get_backbone", "is_batchnorm",
    "keras_cache_dir", "list_backbones", "load", "plots", "predict_dataset", "predict_files", "pretrain",
    "reestimate_batchnorm", "save", "split_base", "train_from_scratch", "write_report",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES_0_1_0)
def test_public_name_is_kept(name):
    assert name in ttf.__all__
    assert getattr(ttf, name) is not None


def test_submodules_keep_their_functions():
    assert callable(ttf.plots.plot_history) and callable(ttf.plots.plot_lr_sweep)
    assert callable(ttf.data.from_directory) and callable(ttf.data.from_arrays)


@pytest.mark.parametrize("run", ["run_dense_0.1.0", "run_knn_0.1.0"])
def test_run_folder_of_0_1_0_loads_and_predicts_the_same(run):
    expected = np.array(json.loads((FIXTURES / "expected_predictions.json").read_text())[run])
    images = np.load(FIXTURES / "probe_images.npy").astype("float32")

    written_by = json.loads((FIXTURES / run / "config.json").read_text())["versions"]["transfer_tf"]
    assert written_by == "0.1.0" != ttf.__version__  # a fixture of the old layout, never refreshed

    classifier = ttf.load(FIXTURES / run)

    assert classifier.class_names == ["dark", "light"]
    np.testing.assert_allclose(np.asarray(classifier.predict(images, verbose=0)), expected, atol=1e-5)
    if run.startswith("run_knn"):
        assert isinstance(classifier, ttf.EstimatorClassifier)
    else:
        assert classifier.training_record.phases[1].name
