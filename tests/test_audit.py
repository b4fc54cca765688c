"""`transfer-tf audit`: planted duplicates, conflicts, leakage, label errors and odd files are found and written
in the agreed CSV form; the folder is never changed; `--exclude` leaves the flagged files out."""

import csv
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

import transfer_tf as ttf
from transfer_tf import cli
from transfer_tf.auditing.folder_audit import NEAR_DUPLICATE_THRESHOLD
from transfer_tf.auditing.neighbours import connected_groups, knn_distance, similar_pairs, unit_rows
from transfer_tf.auditing.scan import scan_folder, signature
from transfer_tf.data.exclusions import AUDIT_COLUMNS, AUDIT_ISSUES, read_exclusions
from transfer_tf.data.split import assign_split

from browser import assert_renders, needs_chromium

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
PER_CLASS = 12


def _noisy(colour, rng, size=40):
    return np.clip(rng.normal(colour, 35, (size, size, 3)), 0, 255).astype(np.uint8)


def _other_split_name(name):
    """A file name in the same class whose split (validation_split 0.2, seed 0) differs from `name`'s."""
    split = assign_split(name, seed=0, validation_split=0.2, test_split=0.0)
    return next(f"leak_{i}.png" for i in range(1000)
                if assign_split(f"leak_{i}.png", seed=0, validation_split=0.2, test_split=0.0) != split)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("audit") / "colours"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.fromarray(_noisy(colour, rng)).save(root / name / f"{i:02d}.png")
    shutil.copy(root / "red" / "00.png", root / "red" / "copy.png")             # exact duplicate
    shutil.copy(root / "green" / "01.png", root / "blue" / "conflict.png")      # a copy under another class
    shutil.copy(root / "red" / "02.png", root / "red" / _other_split_name("02.png"))  # leakage
    Image.fromarray(_noisy(COLOURS["red"], rng)).save(root / "blue" / "mislabelled.png")
    (root / "red" / "broken.jpg").write_bytes(b"not an image at all")
    (root / "red" / "notes.txt").write_text("a note")
    Image.fromarray(np.full((40, 40), 120, np.uint8)).save(root / "green" / "gray.png")
    Image.fromarray(_noisy(COLOURS["green"], rng, 8)).save(root / "green" / "tiny.png")
    Image.fromarray(_noisy(COLOURS["blue"], rng)).save(root / "blue" / "really_a_png.jpg", format="PNG")
    return root


def _snapshot(root):
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def audited(folder, tmp_path_factory):
    before = _snapshot(folder)
    out = tmp_path_factory.mktemp("audit_out") / "colours-audit"
    assert cli.main(["audit", str(folder), "--out", str(out), "--image-size", "32", "--quiet"]) == 0
    assert _snapshot(folder) == before, "the audit changed the user's folder"
    rows = list(csv.DictReader((out / "audit.csv").open()))
    return out, rows


def _flagged(rows, issue):
    return {r["path"] for r in rows if r["issue"] == issue}


def test_the_csv_has_the_agreed_columns_and_issues(audited, folder):
    out, rows = audited
    with (out / "audit.csv").open() as file:
        assert next(csv.reader(file)) == list(AUDIT_COLUMNS)
    assert rows and {r["issue"] for r in rows} <= set(AUDIT_ISSUES)
    assert all((folder / r["path"]).is_file() for r in rows)
    assert all(float(r["score"]) >= 0 for r in rows)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["counts"]["duplicate"] == len(_flagged(rows, "duplicate"))


def test_planted_duplicates_conflicts_and_leakage_are_found(audited, folder):
    _, rows = audited
    leaked = _other_split_name("02.png")
    groups = {}
    for r in rows:
        if r["issue"] == "duplicate":
            groups.setdefault(r["group"], set()).add(r["path"])
    assert sorted(map(sorted, groups.values())) == sorted([
        ["red/00.png", "red/copy.png"], ["blue/conflict.png", "green/01.png"], ["red/02.png", f"red/{leaked}"]])
    assert {"blue/conflict.png", "green/01.png"} <= _flagged(rows, "conflict")
    assert {"red/02.png", f"red/{leaked}"} <= _flagged(rows, "leakage")
    conflict = [r for r in rows if r["issue"] == "conflict" and r["path"] == "blue/conflict.png"]
    assert conflict[0]["label"] == "blue" and conflict[0]["group"]


def test_a_mislabelled_image_is_ranked_with_its_true_class_suggested(audited):
    _, rows = audited
    labels = [r for r in rows if r["issue"] == "label"]
    assert {r["path"]: r["suggested_label"] for r in labels}.get("blue/mislabelled.png") == "red"
    scores = [float(r["score"]) for r in labels]
    assert scores == sorted(scores, reverse=True)


def test_odd_files_are_reported_with_their_reason(audited):
    out, rows = audited
    reasons = {item["path"]: item["reason"] for item in json.loads((out / "audit.json").read_text())["odd_files"]}
    assert "not a decodable image" in reasons["red/broken.jpg"]
    assert "not an image one" in reasons["red/notes.txt"]
    assert "grayscale" in reasons["green/gray.png"]
    assert "tiny" in reasons["green/tiny.png"]
    assert "a PNG file named .jpg" in reasons["blue/really_a_png.jpg"]
    assert not any(path.startswith(("red/0", "green/0", "blue/0")) for path in reasons)


def test_exclusions_keep_one_copy_of_each_group_and_drop_the_rest(audited):
    out, rows = audited
    excluded = set(read_exclusions(out / "audit.csv"))
    assert "red/copy.png" in excluded and "red/00.png" not in excluded
    assert {"blue/conflict.png", "green/01.png", "blue/mislabelled.png", "red/broken.jpg"} <= excluded
    listed = out / "list.txt"
    listed.write_text("# files to leave out\nred/03.png\n\nblue\\04.png\n")
    assert read_exclusions(listed) == ["blue/04.png", "red/03.png"]
    with pytest.raises(FileNotFoundError, match="Received: exclude="):
        read_exclusions(out / "missing.csv")


def test_train_with_exclude_leaves_the_files_out_and_records_them(audited, folder, tmp_path):
    out, _ = audited
    run = tmp_path / "run"
    assert cli.main(["train", str(folder), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
                     "--head-epochs", "1", "--fine-tune-epochs", "0", "--exclude", str(out / "audit.csv"),
                     "--out", str(run), "--quiet"]) == 0
    data = json.loads((run / "data.json").read_text())
    excluded = set(read_exclusions(out / "audit.csv"))
    recorded = set(data["source"]["excluded"])
    assert recorded == {p for p in excluded if (folder / p).suffix in (".png", ".jpg")}  # not notes.txt
    total = sum(sum(c) for c in data["counts"].values())
    readable = sum(1 for p in folder.rglob("*.png")) + 1  # really_a_png.jpg
    assert total == readable - len(recorded - {"red/broken.jpg"})
    assert "Left out by the exclusion list" in (run / "report.md").read_text()


@needs_chromium
def test_the_audit_page_renders_in_a_browser(audited):
    out, _ = audited
    assert_renders(out / "report.html")


def test_the_audit_refuses_to_write_into_the_folder(folder):
    with pytest.raises(ValueError, match="never writes into the audited folder"):
        ttf.audit(folder, out=folder / "audit", image_size=32, verbose=False)


def test_a_folder_split_already_reports_copies_across_its_splits(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for name, colour in COLOURS.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(_noisy(colour, rng)).save(tmp_path / split / name / f"{split}{i}.png")
    shutil.copy(tmp_path / "train" / "red" / "train0.png", tmp_path / "val" / "red" / "copied.png")
    layout = scan_folder(tmp_path)
    assert layout.pre_split and layout.class_names == sorted(COLOURS)
    result = ttf.audit(tmp_path, image_size=32, folds=2, verbose=False)
    leakage = {f.path for f in result.findings if f.issue == "leakage"}
    assert {"train/red/train0.png", "val/red/copied.png"} <= leakage
    assert result.counts()["leakage"] >= 2 and "leakage" in result.summary()


def test_neighbours_find_close_pairs_and_far_points():
    rng = np.random.default_rng(0)
    features = 1.0 + 0.1 * rng.normal(size=(30, 8))  # one cluster
    features[7] = features[3] * 2 + 1e-6
    features[12] = features[3]
    features[29] = -features[29]  # the opposite direction
    unit = unit_rows(features)
    assert {(i, j) for i, j, _ in similar_pairs(unit, 0.9999)} == {(3, 7), (3, 12), (7, 12)}
    copies = np.arange(30)
    copies[12] = 3  # a byte copy of 3 is not its neighbour
    distance = knn_distance(unit, copies, 1)
    assert distance.argmax() == 29 and distance[3] < 1e-4 and distance[12] < 1e-4
    assert connected_groups(5, [(0, 1, 1.0), (1, 2, 1.0)]) == [[0, 1, 2]]


def test_signatures_tell_a_re_encoded_copy_from_another_photo():
    def scene(shift):
        image = Image.fromarray(np.tile(np.linspace(40, 200, 96, dtype=np.uint8)[None, :, None], (96, 1, 3)))
        draw = ImageDraw.Draw(image)
        draw.ellipse((10 + shift, 20, 50 + shift, 60), fill=(220, 30, 30))
        draw.rectangle((60 - shift, 50, 90 - shift, 90), fill=(20, 20, 120))
        return image

    photo, other = scene(0), scene(25)
    buffer = io.BytesIO()
    photo.resize((86, 86)).point(lambda v: min(255, v + 8)).save(buffer, format="JPEG", quality=60)
    assert signature(photo) @ signature(Image.open(buffer)) >= NEAR_DUPLICATE_THRESHOLD
    assert signature(photo) @ signature(other) < 0.9
    assert not signature(Image.new("RGB", (20, 20), (9, 9, 9))).any()
