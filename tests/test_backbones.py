"""The registry: every record builds, and its block map fits the model."""

import numpy as np
import pytest

import transfer_tf as ttf
from transfer_tf.backbones.blocks import block_layers, split_base
from transfer_tf.backbones.preprocessing import ImagePreprocessing
from transfer_tf.backbones.weights import build_base

REQUIRED = [
    "vgg16", "vgg19", "resnet50", "resnet101", "resnet50v2", "mobilenetv2",
    "mobilenetv3small", "mobilenetv3large", "efficientnetb0", "efficientnetb1",
    "efficientnetb2", "efficientnetb3", "efficientnetv2b0", "efficientnet_lite0",
    "efficientnet_lite1", "efficientnet_lite2", "densenet121",
    "inceptionv3", "xception", "convnexttiny",
]
SPECS = ttf.list_backbones()


def test_registry_holds_every_required_backbone():
    assert [spec.name for spec in SPECS] == REQUIRED


def test_list_backbones_gives_plain_records():
    record = ttf.get_backbone("vgg16").to_dict()
    assert record["blocks"] == ["block1", "block2", "block3", "block4", "block5"]
    assert record["keras_application"] == "VGG16"
    assert ttf.get_backbone("resnet50").block_names == ("conv1", "conv2", "conv3", "conv4", "conv5")


@pytest.mark.parametrize("name", ["ResNet50", "resnet-50", "RESNET_50"])
def test_names_ignore_case_and_separators(name):
    assert ttf.get_backbone(name).name == "resnet50"


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match=r"Valid names: vgg16, vgg19.*Received: backbone='resnet5'"):
        ttf.get_backbone("resnet5")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_record_fits_the_built_model(spec):
    base = build_base(spec, spec.min_size, weights=None)
    assert base.output.shape[-1] == spec.feature_channels

    groups = block_layers(base, spec)
    assert list(groups) == list(spec.block_names)
    # The blocks partition the layers, in order, and each holds weights.
    assert [layer for layers in groups.values() for layer in layers] == base.layers
    for name, layers in groups.items():
        assert any(layer.weights for layer in layers), f"block {name} has no weights"

    # Every boundary is a cut point: the base splits there into two models
    # (Keras refuses a split that leaves a tensor behind) that compute it.
    images = np.random.default_rng(2).uniform(0, 255, (2, spec.min_size, spec.min_size, 3))
    expected = np.asarray(base(images))
    for name in spec.block_names[1:]:
        bottom, top = split_base(base, spec, name)
        np.testing.assert_allclose(np.asarray(top(bottom(images))), expected, rtol=1e-5, atol=1e-5)


def test_split_base_refuses_the_first_block():
    spec = ttf.get_backbone("vgg16")
    base = build_base(spec, 32, weights=None)
    with pytest.raises(ValueError, match=r"Received: first_top_block='block1'"):
        split_base(base, spec, "block1")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_in_graph_preprocessing_matches_keras(spec):
    images = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = spec.preprocess_input(images.copy())
    got = ImagePreprocessing(spec.preprocessing)(images)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-4)


def test_image_size_below_minimum_is_refused():
    with pytest.raises(ValueError, match=r"below xception's minimum of 71 x 71.*Received: image_size=64"):
        ttf.ImageClassifier.from_backbone("xception", num_classes=2, image_size=64, weights=None)


@pytest.mark.parametrize("size", [(32,), "32", (32.5, 32), True])
def test_malformed_image_size_is_refused(size):
    with pytest.raises(ValueError, match="image_size must be a positive int or a"):
        ttf.ImageClassifier.from_backbone("vgg16", num_classes=2, image_size=size, weights=None)


@pytest.mark.parametrize("name, units", [
    ("resnet50", ["conv5_block1", "conv5_block2", "conv5_block3"]),
    ("efficientnet_lite0", ["block6a", "block6b", "block6c", "block6d", "block7a"]),
    ("vgg16", ["block5_conv1", "block5_conv2", "block5_conv3"]),
])
def test_the_last_block_splits_into_units_that_phase_2_can_start_from(name, units):
    from transfer_tf.backbones.blocks import unit_blocks
    from transfer_tf.model.freezing import blocks_to_unfreeze, unfreeze_top_blocks

    clf = ttf.ImageClassifier.from_backbone(name, num_classes=2, image_size=32, weights=None)
    spec = clf.backbone_spec
    blocks = unit_blocks(clf.base, spec)
    assert [b.name for b in blocks] == [*spec.block_names[:-1], *units]
    groups = ttf.block_layers(clf.base, spec, blocks)
    assert [layer for layers in groups.values() for layer in layers] == clf.base.layers
    assert [layer for unit in units for layer in groups[unit]] == ttf.block_layers(clf.base, spec)[
        spec.block_names[-1]]

    assert blocks_to_unfreeze(clf, units[-1]) == (units[-1],)
    assert blocks_to_unfreeze(clf, units[-2]) == tuple(units[-2:])
    assert blocks_to_unfreeze(clf, spec.block_names[-2]) == spec.block_names[-2:]
    unfreeze_top_blocks(clf, units[-1])
    trainable = {layer.name for layer in clf.base.layers if layer.trainable_weights}
    assert trainable and trainable <= {layer.name for layer in groups[units[-1]]}
    bottom, top = ttf.split_base(clf.base, spec, units[-1])
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    inputs = clf.preprocessor(images)
    np.testing.assert_allclose(top(bottom(inputs)), clf.base(inputs), atol=1e-5)
    with pytest.raises(ValueError, match=f"a unit of its last block: {', '.join(units)}. "
                                         "Received: unfreeze_blocks='conv9'"):
        blocks_to_unfreeze(clf, "conv9")
