"""``python -m face3d_mesh``: the command-line interface."""

import sys

from .frontends.cli import main

sys.exit(main())
