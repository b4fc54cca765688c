"""`transfer-tf export`: a run's SavedModel, TFLite, ONNX and OpenVINO files."""

from transfer_tf.exporting import TFLiteConfig, export
from transfer_tf.model.run_data import run_splits


def export_run(run, out=None, *, precisions, integer_io=False, calibration_images=None, data_dir=None,
               verbose=1, **options):
    """Exports a run folder (see `exporting.export`), its int8 options given as flags.

    Args:
        run: str or path. A run folder.
        out: str, path or `None`. Defaults to `RUN/export`.
        precisions: list of precision names (`"dynamic-range"` accepted).
        integer_io: bool. The int8 model takes and returns uint8.
        calibration_images: int or `None`. Training images that calibrate
            int8 (default: 300).
        data_dir: str, path or `None`. Images to re-read instead of the
            run's own data, split as the run was.
        verbose: int. Defaults to `1`.
        **options: the other keywords of `export`.

    Returns:
        `ExportResult`.

    Raises:
        ValueError: for int8 options without int8 among the precisions.
    """
    configs = [TFLiteConfig.from_name(name) for name in dict.fromkeys(precisions)]
    int8_options = {"integer_io": integer_io}
    if calibration_images is not None:
        int8_options["num_calibration_images"] = calibration_images
    if integer_io or calibration_images is not None:
        if not any(c.precision == "int8" for c in configs):
            raise ValueError("--integer-io and --calibration-images apply to int8; add int8 to --precision")
        configs = [TFLiteConfig.int8(**int8_options) if c.precision == "int8" else c for c in configs]
    data = run_splits(run, data_dir, verbose=bool(verbose)) if data_dir else None
    return export(run, out, precisions=configs, data=data, verbose=verbose, **options)
