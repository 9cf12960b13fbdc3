"""`python training/generate_masks.py --help`: a thin entry to :mod:`sage_core.cli.generate_masks`.

Install the package first (`./run.sh env`, then `source .venv/bin/activate`; or `pip install -e .[train,export]`).
"""

import sys

from sage_core.cli.generate_masks import main

if __name__ == "__main__":
    sys.exit(main())
