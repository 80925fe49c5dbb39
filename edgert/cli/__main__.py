"""`python -m edgert.cli`."""
import sys

from edgert.cli.main import main

sys.exit(main())
