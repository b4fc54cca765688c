"""`audit`: what is wrong with a folder of labelled images, before any training.

Every file is read once (hashed, decoded, checked) and the frozen base runs
once over the images; the findings come from those features: label issues
(`label_issues`), copies and what they reveal (`duplicates`), outliers
(`outliers`) and odd files (`odd_files`). Nothing in the folder is moved,
renamed or changed.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

from transfer_tf.auditing import findings as findings_files
from transfer_tf.auditing.duplicates import duplicate_findings
from transfer_tf.auditing.label_issues import FOLDS, label_issue_findings
from transfer_tf.auditing.neighbours import knn_distance, similar_pairs, unit_rows
from transfer_tf.auditing.odd_files import odd_file_findings
from transfer_tf.auditing.outliers import NEIGHBOURS, outlier_findings
from transfer_tf.auditing.scan import CHUNK, read_files, scan_folder
from transfer_tf.backbones.registry import get_backbone
from transfer_tf.core.checks import check_choice, check_int, check_number, normalise_image_size
from transfer_tf.core.choices import RESIZE_POLICIES
from transfer_tf.core.integrity import write_json_atomically
from transfer_tf.data.exclusions import AUDIT_ISSUES
from transfer_tf.data.split import validate_fractions
from transfer_tf.methods.loading import load
from transfer_tf.model.classifier import ImageClassifier

CSV_FILE = "audit.csv"
JSON_FILE = "audit.json"
PAGE_FILE = "report.html"
NEAR_DUPLICATE_THRESHOLD = 0.998
DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclasses.dataclass
class Audit:
    """The findings of `audit` on one folder.

    Attributes:
        root: `Path` of the audited folder.
        class_names: list of str.
        findings: list of `Finding`, ordered by issue, group and score.
        files: list of `ImageFile` that decoded (a finding's `index` points here).
        unusable: list of `ImageFile` the loader cannot or does not use.
        label_scores: float array `(len(files),)` or `None`: 1 - the
            out-of-fold probability of each file's label.
        settings: dict. How the audit ran (backbone, size, thresholds, split).
        seconds: float. Wall time.
        thumbnails: list of uint8 arrays, one per file in `files`.
    """

    root: Path
    class_names: list
    findings: list
    files: list
    unusable: list
    label_scores: object
    settings: dict
    seconds: float
    thumbnails: list = dataclasses.field(repr=False, default_factory=list)

    def counts(self):
        """Files flagged per issue (a file counts once per issue)."""
        return {issue: len({f.path for f in self.findings if f.issue == issue}) for issue in AUDIT_ISSUES}

    def summary(self):
        """A few lines: files read, findings per issue, and what to look at first."""
        counts = self.counts()
        lines = [f"Audited {len(self.files)} images in {len(self.class_names)} classes of {self.root} "
                 f"in {self.seconds:.1f} s ({len(self.unusable)} file(s) unusable or ignored)."]
        lines += [f"  {issue:<15}{count:>6} file(s)" for issue, count in counts.items()]
        if self.settings.get("label_note"):
            lines.append(f"  ({self.settings['label_note']})")
        return "\n".join(lines)

    def to_dict(self):
        return {"root": str(self.root), "class_names": self.class_names, "images": len(self.files),
                "unusable": len(self.unusable), "counts": self.counts(), "settings": self.settings,
                "seconds": round(self.seconds, 2),
                "odd_files": [{"path": f.path, "reason": f.detail} for f in self.findings if f.issue == "odd_file"]}

    def write(self, out):
        """Writes `audit.csv`, `audit.json` and `report.html` to `out`; returns their paths by name."""
        from transfer_tf.auditing.page import write_audit_page

        out = _outside(out, self.root)
        return {"csv": findings_files.write_csv(out / CSV_FILE, self.findings),
                "json": write_json_atomically(out / JSON_FILE, self.to_dict()),
                "page": write_audit_page(self, out / PAGE_FILE)}


def audit(path, *, out=None, backbone=DEFAULT_BACKBONE, weights="imagenet", run=None, image_size=None,
          resize="stretch", validation_split=0.2, test_split=0.0, seed=0, folds=FOLDS,
          near_duplicate_threshold=NEAR_DUPLICATE_THRESHOLD, batch_size=32, verbose=True):
    """Finds what is wrong with a folder of labelled images: wrong labels, copies, leakage, outliers, odd files.

    Args:
        path: str or path. One sub-folder of images per class, or `train/`,
            `validation/` (`val/`) and `test/` folders each holding them.
        out: str, path or `None`. Folder to write `audit.csv`, `audit.json`
            and `report.html` to (never inside `path`); `None` writes nothing.
            Defaults to `None`.
        backbone: str. Registered backbone whose pooled features are
            compared. Defaults to `"efficientnet_lite0"` (ImageNet weights
            offline).
        weights: `"imagenet"`, `None` or a path, for `backbone`. Defaults to
            `"imagenet"`.
        run: str, path or `None`. A run folder whose base is used instead of
            `backbone` (at its image size). Defaults to `None`.
        image_size: int, tuple or `None`. Defaults to the backbone's size.
        resize: str. `"stretch"`, `"crop"` or `"pad"`. Defaults to `"stretch"`.
        validation_split, test_split, seed: the split `transfer-tf train`
            would make of a folder not split already (for leakage). Default
            to `0.2`, `0.0` and `0`; `seed` also seeds the K folds.
        folds: int. Folds of the out-of-fold classifier. Defaults to `5`.
        near_duplicate_threshold: float. Correlation of two images' 16 x 16
            grayscale signatures from which they count as near duplicates
            (see `duplicates`). Defaults to `0.998`.
        batch_size: int. Images per forward pass. Defaults to `32`.
        verbose: bool. Progress and the summary. Defaults to `True`.

    Returns:
        `Audit`.

    Raises:
        FileNotFoundError: if `path` is not a folder.
        ValueError: for a folder without class folders or readable images,
            or an argument out of range.

    Examples:

        >>> result = ttf.audit("photos/", out="photos-audit")   # doctest: +SKIP
        >>> result.counts()["duplicate"]                        # doctest: +SKIP
        4
    """
    check_choice("resize", resize, RESIZE_POLICIES)
    check_int("folds", folds, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    check_number("near_duplicate_threshold", near_duplicate_threshold, above=0, below=1)
    check_int("seed", seed)
    validate_fractions(validation_split, test_split)
    if out is not None:
        _outside(out, path)
    started = time.perf_counter()
    layout = scan_folder(path, validation_split=validation_split, test_split=test_split, seed=seed)
    classifier = _feature_classifier(run, backbone, weights, image_size, len(layout.class_names))
    if verbose:
        print(f"Audit: reading {len(layout.files)} files of {len(layout.class_names)} classes in {path} and "
              f"running {classifier.backbone_name} at {classifier.image_size[0]} px ...")
    readable, features, thumbnails, signatures = _features(classifier, layout.files, resize, batch_size, verbose)
    if not readable:
        raise ValueError(f"No readable image in the class folders of {path}.")
    unusable = layout.ignored + [f for f in layout.files if f.problem]
    copies = np.unique([r.sha256 for r in readable], return_inverse=True)[1]
    pairs = similar_pairs(unit_rows(signatures), near_duplicate_threshold)
    distances = knn_distance(unit_rows(features, centre=True), copies, NEIGHBOURS)
    labelled, label_scores, label_note = label_issue_findings(readable, features, layout.class_names,
                                                              folds=folds, seed=seed)
    found = (labelled + duplicate_findings(readable, pairs, layout.class_names)
             + outlier_findings(readable, distances, layout.class_names)
             + odd_file_findings(readable, unusable, layout.class_names))
    settings = {"backbone": classifier.backbone_name, "weights": str(weights) if run is None else f"run {run}",
                "image_size": list(classifier.image_size), "resize": resize, "pre_split": layout.pre_split,
                "validation_split": validation_split, "test_split": test_split, "seed": seed, "folds": folds,
                "near_duplicate_threshold": near_duplicate_threshold, "label_note": label_note}
    result = Audit(Path(path), layout.class_names, findings_files.ordered(found), readable, unusable, label_scores,
                   settings, time.perf_counter() - started, thumbnails)
    written = result.write(out) if out is not None else None
    if verbose:
        print(result.summary())
        if written:
            print(f"Open {written['page']} in a browser; the findings are in {written['csv']}.")
    return result


def _outside(out, root):
    """`out` as a `Path`, refused when it lies inside the audited folder."""
    out = Path(out)
    if out.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"The audit never writes into the audited folder. Choose an --out outside "
                         f"{root}. Received: out={str(out)!r}")
    return out


def _feature_classifier(run, backbone, weights, image_size, num_classes):
    if run is not None:
        classifier = load(run)
        classifier = getattr(classifier, "classifier", classifier)  # a classical head's ImageClassifier
        if image_size is not None and normalise_image_size(image_size) != tuple(classifier.image_size):
            raise ValueError(f"The run {run} works at {tuple(classifier.image_size)}; leave image_size out "
                             f"with run=. Received: image_size={image_size}")
        return classifier
    spec = get_backbone(backbone)
    size = normalise_image_size(spec.default_size if image_size is None else image_size, spec)
    return ImageClassifier.from_backbone(spec.name, num_classes=max(2, num_classes), image_size=size,
                                         weights=weights)


def _features(classifier, files, resize, batch_size, verbose):
    """The readable files, their pooled features `(n, channels)`, thumbnails and signatures; files read once."""
    import keras
    import tensorflow as tf

    height, width = classifier.image_size
    pooled = tf.function(
        lambda images: tf.reduce_mean(tf.cast(classifier.extract_features(images), tf.float32), axis=(1, 2)),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
    progress = keras.utils.Progbar(len(files), unit_name="file") if verbose else None
    readable, features, thumbnails, signatures, seen = [], [], [], [], 0
    for records, pixels, small, signed in read_files(files, (height, width), resize):
        for start in range(0, len(pixels), batch_size):
            features.append(pooled(tf.constant(pixels[start:start + batch_size], tf.float32)).numpy())
        readable += records
        thumbnails += small
        signatures += signed
        seen = min(len(files), seen + CHUNK)
        if progress is not None:
            progress.update(seen)
    channels = features[0].shape[1] if features else 0
    features = np.concatenate(features) if features else np.zeros((0, channels), np.float32)
    return readable, features, thumbnails, np.array(signatures, np.float32)
