"""`python -m rag_job`: see rag_job/cli.py."""

import sys

from rag_job.cli import main

sys.exit(main())
