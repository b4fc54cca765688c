"""Loaders: bad files skipped and reported, every good file used, stable splits."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from transfer_tf import data
from transfer_tf.data.split import assign_split

from image_files import BAD_KINDS, GOOD_KINDS, kind_of, write_bad, write_class_folder, write_image

CLASSES = ("ants", "bees", "wasps")


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """Three classes, each holding every readable kind and every bad kind."""
    root = tmp_path_factory.mktemp("messy")
    good, bad = {}, set()
    for label, name in enumerate(CLASSES):
        for kind in GOOD_KINDS:
            path = root / name / kind
            write_image(path, kind_of(kind), 40 + 80 * label)
            good[path] = label
        for kind in BAD_KINDS:
            write_bad(root / name / kind, kind)
            bad.add(root / name / kind)
        (root / name / "notes.txt").write_text("ignored: not an image extension")
        (root / name / ".hidden.jpg").write_bytes(b"ignored: hidden")
    (root / ".DS_Store").mkdir()
    write_image(root / "stray.png", "rgb", 128)  # beside the class folders: in no class
    return root, good, bad


def all_files(splits):
    return {path: label for split in splits.files.values() for path, label in split}


def test_bad_files_are_skipped_and_reported(messy_folder, capsys):
    root, good, bad = messy_folder
    splits = data.from_directory(root, image_size=16, validation_split=0.3, seed=1)
    assert {path for path, _ in splits.skipped} == bad
    assert all(reason for _, reason in splits.skipped)
    printed = capsys.readouterr().out
    assert f"Skipped {len(bad)} unreadable file(s)" in printed
    assert "... and" in printed  # more bad files than the report lists
    # Files the loader passes over are named too; hidden ones are not.
    ignored = printed.split("Ignored 4 file(s) that are not read")[1].splitlines()[1:5]
    assert ignored == [f"  {root / 'stray.png'}: outside any class folder"] + [
        f"  {root / name / 'notes.txt'}: extension '.txt'" for name in CLASSES]


def test_unlabelled_images_read_every_image_file_and_name_the_rest(messy_folder, capsys):
    root, good, bad = messy_folder
    images = data.unlabelled_images(root, image_size=16)
    assert set(images.paths) == set(good) | {root / "stray.png"}  # beside the class folders counts here
    printed = capsys.readouterr().out
    assert printed.split("Ignored 3 file(s) that are not read (images end in")[1].splitlines()[1:4] == [
        f"  {root / name / 'notes.txt'}: extension '.txt'" for name in CLASSES]


def test_every_good_file_is_used_with_its_label(messy_folder):
    root, good, _ = messy_folder
    splits = data.from_directory(root, image_size=16, validation_split=0.3, test_split=0.2,
                                 seed=1, verbose=False)
    assert splits.class_names == list(CLASSES)
    assert all_files(splits) == good
    assert sum(map(sum, splits.counts.values())) == len(good)
    seen = 0
    for dataset in (splits.train, splits.validation, splits.test):
        for images, labels in dataset:
            assert images.shape[1:] == (16, 16, 3)
            # Each class has its own brightness whatever the file kind or mode.
            brightness = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2, 3]).numpy()
            np.testing.assert_allclose(brightness, 40 + 80 * labels.numpy(), atol=3)
            seen += len(labels)
    assert seen == len(good)


def test_image_modes_become_rgb(tmp_path):
    for name in ("gray.jpg", "cmyk.jpg", "deep16.png", "palette.gif", "rgba.png", "pic.webp"):
        path = tmp_path / name
        value = 90
        write_image(path, kind_of(name), value)
        image = data.read_image(path, (20, 30))
        assert image.shape == (20, 30, 3) and image.dtype == np.uint8
        assert abs(float(image.mean()) - value) < 3, name


def test_transparent_pixels_become_white(tmp_path):
    pixels = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    Image.fromarray(pixels, "RGBA").save(tmp_path / "clear.png")
    assert data.read_image(tmp_path / "clear.png", (8, 8)).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 20:] = 255  # left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif)
    image = data.read_image(tmp_path / "photo.jpg", (40, 20))
    assert image[:18].mean() < 10 and image[22:].mean() > 245


@pytest.mark.parametrize("policy", data.RESIZE_POLICIES)
def test_resize_policies(tmp_path, policy):
    pixels = np.full((20, 40, 3), 200, np.uint8)  # wide, bright
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = data.read_image(tmp_path / "wide.png", (20, 20), policy)
    assert image.shape == (20, 20, 3)
    padded_rows = (image.mean(axis=(1, 2)) < 1).sum()
    assert padded_rows == (10 if policy == "pad" else 0)


def test_split_is_deterministic_and_follows_the_seed(tmp_path):
    write_class_folder(tmp_path, ["a", "b"], per_class=40)
    first = data.from_directory(tmp_path, image_size=8, seed=3, verbose=False).files
    again = data.from_directory(tmp_path, image_size=8, seed=3, verbose=False).files
    other = data.from_directory(tmp_path, image_size=8, seed=4, verbose=False).files
    assert sorted(first["validation"]) == sorted(again["validation"])
    assert sorted(first["validation"]) != sorted(other["validation"])


def test_split_is_stratified():
    for count in (400, 100):  # a large and a small class, split on their own
        keys = [f"img_{i}.jpg" for i in range(count)]
        splits = [assign_split(k, seed=0, validation_split=0.25, test_split=0.25) for k in keys]
        for name in ("validation", "test"):
            assert abs(splits.count(name) / count - 0.25) < 0.1


def test_adding_images_never_moves_existing_ones(tmp_path):
    write_class_folder(tmp_path, ["a", "b"], per_class=30)
    before = data.from_directory(tmp_path, image_size=8, validation_split=0.3,
                                 test_split=0.2, verbose=False)
    for name in ("a", "b"):
        for i in range(30, 60):
            write_image(tmp_path / name / f"new_{i}.png", "rgb", 50)
    after = data.from_directory(tmp_path, image_size=8, validation_split=0.3,
                                test_split=0.2, verbose=False)
    split_after = {path: split for split, items in after.files.items() for path, _ in items}
    for split, items in before.files.items():
        for path, _ in items:
            assert split_after[path] == split
    assert sum(map(sum, after.counts.values())) == 120


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*Received: path="):
        data.from_directory(tmp_path / "missing", image_size=8)
    write_class_folder(tmp_path / "one", ["only"], per_class=2)
    with pytest.raises(ValueError, match="single class folder"):
        data.from_directory(tmp_path / "one", image_size=8)
    (tmp_path / "none" / "a").mkdir(parents=True)
    (tmp_path / "none" / "b").mkdir()
    with pytest.raises(ValueError, match="No image files"):
        data.from_directory(tmp_path / "none", image_size=8)
    write_class_folder(tmp_path / "gap", ["a", "b"], per_class=2)
    (tmp_path / "gap" / "c").mkdir()
    with pytest.raises(ValueError, match=r"\['c'\].*hold no image files"):
        data.from_directory(tmp_path / "gap", image_size=8)
    write_class_folder(tmp_path / "broken", ["a", "b"], per_class=2)
    (tmp_path / "broken" / "c").mkdir()
    write_bad(tmp_path / "broken" / "c" / "x.jpg", "text.jpg")
    with pytest.raises(ValueError, match=r"\['c'\].*no readable images"):
        data.from_directory(tmp_path / "broken", image_size=8, verbose=False)
    with pytest.raises(ValueError, match="Received: validation_split=1.5"):
        data.from_directory(tmp_path / "gap", image_size=8, validation_split=1.5)
    with pytest.raises(ValueError, match="Received: augment='wild'"):
        data.from_directory(tmp_path / "gap", image_size=8, augment="wild")
    with pytest.raises(ValueError, match="Received: resize='squash'"):
        data.from_directory(tmp_path / "missing", image_size=8, resize="squash")


def test_augmentation_touches_the_training_split_only(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 16, 16, 3)).astype(np.uint8)
    plain = data.from_arrays(images, np.arange(12) % 2, validation_split=0.3, seed=0)
    augmented = data.from_arrays(images, np.arange(12) % 2, validation_split=0.3, seed=0,
                                 augment="strong")
    def rows(dataset):
        return sorted(x.numpy().astype(np.float32).tobytes() for x, _ in dataset.unbatch())

    assert rows(plain.validation) == rows(augmented.validation)
    assert rows(plain.train) != rows(augmented.train)
    originals = {image.astype(np.float32).tobytes() for image in images}
    assert set(rows(plain.train)) <= originals


def test_from_arrays_converts_and_counts():
    gray = np.arange(10 * 28 * 28).reshape(10, 28, 28) % 256
    splits = data.from_arrays(gray.astype(np.float64), np.arange(10) % 2, ["even", "odd"],
                              image_size=32)
    images, labels = next(iter(splits.train))
    assert images.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert splits.counts["train"] == [5, 5] and splits.validation is None
    assert splits.class_weight() == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        data.from_arrays(gray, np.arange(9))
    with pytest.raises(ValueError, match="3 classes but 2 class_names"):
        data.from_arrays(gray, np.arange(10) % 3, ["a", "b"])
    with pytest.raises(ValueError, match=r"Received: images.shape=\(10, 784\)"):
        data.from_arrays(gray.reshape(10, -1), np.arange(10) % 2)


def test_balanced_class_weight_from_counts():
    images = np.zeros((40, 8, 8, 3), np.uint8)
    labels = np.array([0] * 30 + [1] * 10)
    weights = data.from_arrays(images, labels).class_weight()
    assert weights == pytest.approx({0: 40 / 60, 1: 40 / 20})


def test_cache_gives_the_same_images(tmp_path):
    write_class_folder(tmp_path / "imgs", ["a", "b"], per_class=4)
    for cache in (True, tmp_path / "cache"):
        splits = data.from_directory(tmp_path / "imgs", image_size=8, validation_split=0.0,
                                     cache=cache, verbose=False)
        for _ in range(2):  # the second pass reads the cache
            totals = sorted(float(x.numpy().sum()) for x, _ in splits.train.unbatch())
            assert len(totals) == 8


def test_from_tfds_reads_a_prepared_dataset():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        splits = data.from_tfds("mnist", image_size=16, validation_split=0.2, batch_size=8)
    assert splits.class_names == [str(i) for i in range(10)]
    assert sum(splits.counts["train"]) + sum(splits.counts["validation"]) == 30
    images, labels = next(iter(splits.train))
    assert images.shape[1:] == (16, 16, 3) and labels.dtype == tf.int32
    total = sum(len(y) for _, y in splits.train) + sum(len(y) for _, y in splits.validation)
    assert total == 30


def test_from_tfds_offline_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"not prepared in {tmp_path}.*data_dir="):
        data.from_tfds("mnist", image_size=16, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'no_such_dataset_xyz'"):
        data.from_tfds("no_such_dataset_xyz", image_size=16, data_dir=str(tmp_path))


def test_elpv_builtin_dataset(capsys):
    splits = data.elpv(image_size=24, module_type="poly", batch_size=64)
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().out
    assert splits.source["licence"] == "CC-BY-NC-SA-4.0"
    assert splits.class_names == ["functional", "defective"]
    rows = [r for r in data.solar_cells.elpv_table() if r[2] == "poly"]
    assert sum(map(sum, splits.counts.values())) == len(rows)
    defective = sum(p >= 0.5 for _, p, _ in rows)
    assert sum(c[1] for c in splits.counts.values()) == defective
    images, labels = next(iter(splits.test))
    assert images.shape[1:] == (24, 24, 3)
    four = data.elpv(image_size=24, task="probability", verbose=False)
    assert four.class_names == ["0", "1/3", "2/3", "1"]
    with pytest.raises(ValueError, match="Received: module_type='thin'"):
        data.elpv(module_type="thin")
