"""The foundation every layer may use: argument checks, the option lists,
errors, file integrity (checksums, atomic writes, locks), staged folders,
seeding, cache folders, and the CPU settings applied when `transfer_tf` is
imported.

Imports: nothing else of `transfer_tf` (the standard library, and
TensorFlow or Keras only inside functions that need them).
"""
