"""`python -m bookvault` is the `bookvault` command."""

import sys

from bookvault.cli import main

sys.exit(main())
