"""The repository's promises to a new user: one install, one public API."""

import configparser
import re
from pathlib import Path

import transfer_tf as ttf

from test_earlier_runs import PUBLIC_NAMES_0_1_0

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines):
    return sorted(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))


def test_requirements_match_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    install_requires = config["options"]["install_requires"].splitlines()
    assert _requirements((ROOT / "requirements.txt").read_text().splitlines()) == _requirements(install_requires)


def test_ci_runs_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert commands, "the README has no bash command block"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"README command not run by .ci/run: {command}"


def test_public_api():
    added_since_0_1_0 = ["Audit", "Bench", "CalibrationResult", "Interpretation", "TemperatureScaling", "audit",
                         "bench", "calibrate", "grad_cam", "interpret", "predict_labels",
                         "transferability", "Transferability", "rank_bases", "RankedBase", "auto", "AutoResult"]
    assert sorted(ttf.__all__) == sorted(PUBLIC_NAMES_0_1_0 + added_since_0_1_0)
    assert sorted(ttf.data.__all__) == [
        "AUGMENTATIONS", "ELPV_LICENCE", "ElpvArrays", "IMAGE_EXTENSIONS", "ImageSplits",
        "RESIZE_POLICIES", "UnlabelledImages", "augmentation", "check_image", "elpv", "elpv_arrays",
        "from_arrays", "from_directory", "from_tfds", "list_images", "read_exclusions", "read_image",
        "stratified_sample", "unlabelled_images",
    ]
    assert sorted(ttf.plots.__all__) == [
        "plot_class_distribution", "plot_confusion_matrix", "plot_history", "plot_lr_sweep",
        "plot_mistakes", "plot_validation_curves",
    ]
    for name in ttf.__all__:
        assert getattr(ttf, name) is not None


def test_public_names_stay_what_they_are_after_every_module_is_imported():
    # Importing `transfer_tf.x` binds the module to the package attribute `x`,
    # which would hide a public function of the same name.
    import importlib
    import pkgutil
    import types

    for module in pkgutil.walk_packages(ttf.__path__, prefix="transfer_tf."):
        importlib.import_module(module.name)
    for name in ttf.__all__:
        value = getattr(ttf, name)
        if name not in ("data", "plots"):
            assert not isinstance(value, types.ModuleType), f"ttf.{name} is a module"


def test_console_script_is_declared():
    config = (ROOT / "setup.cfg").read_text()
    assert "transfer-tf = transfer_tf.cli:main" in config
