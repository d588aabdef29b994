"""``python -m jobs <step> --ds YYYY-MM-DD [...]``: the same CLI as ``jobs/main.py``."""

from __future__ import annotations

import sys

from jobs.main import main

if __name__ == "__main__":
    sys.exit(main())
