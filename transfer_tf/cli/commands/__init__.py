"""One module per `transfer-tf` command: `add_parser(subparsers, common)` adds
its arguments, and `run(args)` (the parser's `handler`) calls its job (imported only then, so that
building the parser loads no TensorFlow)."""
