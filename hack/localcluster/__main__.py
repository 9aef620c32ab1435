"""`python -m localcluster up|down` (what `make cluster-up` / `make cluster-down` run)."""

import sys

from .cli import main

sys.exit(main())
