"""``python -m sage_ros.bags``: the same as ``sage-fuse`` (bag mode with ``--bag``, image files otherwise)."""

import sys

from sage_ros.bags.cli import main

sys.exit(main())
