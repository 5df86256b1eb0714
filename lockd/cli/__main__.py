"""`python -m lockd.cli …` is the `lockd` command."""

from __future__ import annotations

import sys

from lockd.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
