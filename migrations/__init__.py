"""lockd's Alembic script directory, installed as the package `lockd.migrations` (see setup.py)."""
