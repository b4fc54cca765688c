"""Transfer methods beyond the dense head: classical heads on frozen
features, pretraining on unlabelled images, domain adaptation (AdaBN, DANN,
Deep CORAL), transferability scores of frozen features (LogME, a linear
probe), and `load`, which opens a run folder whatever method made it.

Imports: `core`, `backbones`, `data`, `model`, `training`.
"""
