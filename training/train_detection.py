"""`python training/train_detection.py --help`: a thin entry to :mod:`sage_core.cli.train_detection`."""

import sys

from sage_core.cli.train_detection import main

if __name__ == "__main__":
    sys.exit(main())
