"""`python3 -m capcheck ...`: the capcheck command line, with Python plugins
(`--plugin my_runner.py`) as well as shared libraries."""

import sys

from . import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
