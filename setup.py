"""Package layout that pyproject.toml cannot say: the top-level `migrations/` ships as `lockd.migrations`.

Migrations stay at the top of the repository (the design card's layout, where `alembic.ini`
finds them); in the wheel they are the package `lockd.migrations`, which lockd locates with
`importlib.resources`. Everything else about the project is in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["lockd", "lockd.*"]), "lockd.migrations", "lockd.migrations.versions"],
    package_dir={"lockd.migrations": "migrations"},
)
