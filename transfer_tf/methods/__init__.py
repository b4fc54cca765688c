"""Transfer methods beyond the dense head: classical heads on frozen
features, pretraining on unlabelled images, domain adaptation (AdaBN, DANN,
Deep CORAL), and `load`, which opens a run folder whatever method made it.

Imports: `core`, `backbones`, `data`, `model`, `training`.
"""
