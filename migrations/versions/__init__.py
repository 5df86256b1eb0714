"""lockd's schema revisions; Alembic skips this file when it reads the directory."""
