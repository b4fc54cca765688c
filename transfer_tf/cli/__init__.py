"""`transfer-tf`, the command line: the parser and entry point (`app`), one
module per command (`commands/`), the jobs behind the commands as Python
functions (`jobs/`), and the offline demo (`demo`).

Imports: any layer; no other layer imports it. Building the parser loads no
TensorFlow.
"""

from transfer_tf.cli.app import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
