"""`python -m nbzx.cli`: the same as the `nbzx` command."""

import sys

from nbzx.cli import main

sys.exit(main())
