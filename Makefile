# The two commands of the README: `make serve` and `make test`. Everything else here serves them.
# pip is run without the machine's pip.conf / find-links so the venv holds exactly the hashed lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_ENV := PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_DISABLE_PIP_VERSION_CHECK=1
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: serve test lint venv dev lock clean fixture-index

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	touch $@

$(VENV)/.runtime: $(VENV)/.created requirements/runtime.txt
	$(PIP_ENV) $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/runtime.txt
	touch $@

$(VENV)/.dev: $(VENV)/.created requirements/dev.txt
	$(PIP_ENV) $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.build: $(VENV)/.created requirements/build.txt
	$(PIP_ENV) $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/build.txt
	touch $@

# lockd itself, editable: .venv/bin/lockd runs this checkout, and migrations/ is importable as
# lockd.migrations (setup.py). Built with the hashed setuptools above, not one fetched unpinned.
# The rm retires the path file that venvs made before lockd was installable put there.
$(VENV)/.project: $(VENV)/.runtime $(VENV)/.build pyproject.toml setup.py
	rm -f $(VENV)/lib/python*/site-packages/lockd-checkout.pth
	$(PIP_ENV) $(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

venv: $(VENV)/.project
dev: $(VENV)/.dev $(VENV)/.project

serve: $(VENV)/.project
	$(VENV)/bin/lockd migrate
	$(VENV)/bin/lockd serve --host $(HOST) --port $(PORT)

lint: dev
	$(VENV)/bin/ruff check lockd tests fixtures bench
	$(VENV)/bin/ruff format --check lockd tests fixtures bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: dev
	$(VENV)/bin/ruff check lockd tests fixtures bench
	$(VENV)/bin/ruff format --check lockd tests fixtures bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Regenerates the hashed locks of lockd's own dependencies (needs uv: `make dev` provides it).
lock: $(VENV)/.dev
	cd requirements && $(PIP_ENV) ../$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q runtime.in -o runtime.txt
	cd requirements && $(PIP_ENV) ../$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q dev.in -o dev.txt
	cd requirements && $(PIP_ENV) ../$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q build.in -o build.txt

fixture-index: $(VENV)/.dev
	$(PY) -m fixtures.index --port 8700

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
