"""The jobs behind the command line, as functions: train, auto, compare, adapt, pretrain, lr-find,
evaluate, interpret, predict, export.

`transfer-tf` maps its arguments to these and prints what they return;
notebooks and scripts can call them too. Each checks its settings before any
slow work starts. One module per job; `common` holds what they share.
"""

from transfer_tf.cli.jobs.adapt import adapt_run
from transfer_tf.cli.jobs.auto_choice import AutoResult, auto, format_auto
from transfer_tf.cli.jobs.common import format_training, read_folder
from transfer_tf.cli.jobs.compare import compare_run
from transfer_tf.cli.jobs.evaluate import evaluate_run
from transfer_tf.cli.jobs.export import export_run
from transfer_tf.cli.jobs.interpret import format_interpretation, interpret_run
from transfer_tf.cli.jobs.lr_find import lr_find_run
from transfer_tf.cli.jobs.predict import format_predictions, predict_files
from transfer_tf.cli.jobs.pretrain import pretrain_run
from transfer_tf.cli.jobs.train import format_calibration, train_run

__all__ = [
    "AutoResult", "adapt_run", "auto", "compare_run", "evaluate_run", "export_run", "format_auto", "format_calibration",
    "format_interpretation",
    "format_predictions",
    "format_training", "interpret_run", "lr_find_run", "predict_files", "pretrain_run", "read_folder", "train_run",
]
