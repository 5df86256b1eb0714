"""lockd's benchmarks against uv and pip-compile: resolution, serving, bytes fetched, scaling.

Not part of the test suite; run ``python -m bench run`` (see ``bench/README.md``).
"""

from __future__ import annotations

__all__: list[str] = []
