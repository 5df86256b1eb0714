"""lockd: resolve requirements.in for an explicit target, store the lock by digest, serve it, watch it drift."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
