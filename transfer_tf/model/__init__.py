"""The classifier: `ImageClassifier` (base + head), the head, freezing by
blocks with BatchNorm kept in inference mode, dtype policies, where it runs
(`distribute`), its training record, and the run folder it is saved to and
loaded from (`saving`, `run_data`).

Imports: `core`, `backbones`, `data`.
"""
