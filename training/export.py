"""`python training/export.py --help`: a thin entry to :mod:`sage_core.cli.export`.

Install the package first (`./run.sh env`, then `source .venv/bin/activate`; or `pip install -e .[train,export]`).
"""

import sys

from sage_core.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
