"""python -m vasset."""

import sys

from vasset.cli import main

sys.exit(main())
