"""`python -m transfer_tf.cli`, as `transfer-tf`."""

import sys

from transfer_tf.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
