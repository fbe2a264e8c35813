"""`python -m phi3ft` runs the same CLI as the `phi3ft` console script."""

import sys

from phi3ft.cli import main

sys.exit(main())
