"""`python training/distill.py --help`: a thin entry to :mod:`sage_core.cli.distill`.

Install the package first (`./run.sh env`, then `source .venv/bin/activate`; or `pip install -e .[train,export]`).
"""

import sys

from sage_core.cli.distill import main

if __name__ == "__main__":
    sys.exit(main())
