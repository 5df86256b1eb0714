"""The `lockd` command's exit codes: CI tells an error, a usage mistake and a tripped gate apart."""

from __future__ import annotations

__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3  # the gate tripped: distinct from 1 (an error) so CI can tell them apart
EXIT_INTERRUPTED = 130
