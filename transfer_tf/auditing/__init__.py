"""Auditing a folder of labelled images before training: label issues,
exact and near duplicates, conflicting labels, leakage between splits,
outliers and odd files, written as `audit.csv`, `audit.json` and a
self-contained `report.html`.

Imports: every layer below it: `core`, `backbones`, `data`, `model`,
`training`, `methods`.
"""
