"""`python -m embedkit.cli`, the same as the `embedkit` script."""

import sys

from embedkit.cli import main

sys.exit(main())
