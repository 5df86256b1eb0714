"""The HTTP surface of lockd (FastAPI): the app factory is `lockd.http.app.create_app`.

Nothing is imported here, so `lockd.http.logs` can be used without loading FastAPI.
"""

from __future__ import annotations

__all__: list[str] = []
