"""``python -m sage_ros.bags``: sage-fuse's bag mode alone (the flags of ``sage-fuse --bag``)."""

import sys

from sage_ros.bags.cli import main

sys.exit(main())
