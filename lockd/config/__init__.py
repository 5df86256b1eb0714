"""lockd's settings: `LOCKD_*` variables read once into a frozen `Settings`, or a fail-fast error.

`settings` holds the fields and what derives from them, `variables` reads `LOCKD_*` into them,
`coercion` turns a variable's text into its type, `checks` what a value must satisfy beyond its
type and the files settings name.
"""

from __future__ import annotations

from lockd.config.checks import InvalidConfiguration
from lockd.config.settings import DEFAULT_DATABASE_URL, Settings, load_settings, setting_names

__all__ = ["DEFAULT_DATABASE_URL", "InvalidConfiguration", "Settings", "load_settings", "setting_names"]
