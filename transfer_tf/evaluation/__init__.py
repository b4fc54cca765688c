"""Judging a trained classifier: predictions and metrics, error analysis
(top losses, most-confused classes, Grad-CAM), plots, the run report, and
the comparison of transfer against training from scratch.

Imports: every layer below it: `core`, `backbones`, `data`, `model`,
`training`, `methods`, `auditing`.
"""
