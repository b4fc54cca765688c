"""Training a classifier: the two-phase `fine_tune` and the phases it runs,
the settings of a run, the feature cache of the frozen part, learning-rate
schedules and the LR finder, backups and resume, and training from scratch
as the baseline.

Imports: `core`, `backbones`, `data`, `model`.
"""
