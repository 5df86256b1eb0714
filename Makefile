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
	$(VENV)/bin/python -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'lockd-checkout.pth').write_text(str(pathlib.Path.cwd()) + '\n')"
	touch $@

$(VENV)/.runtime: $(VENV)/.created requirements/runtime.txt
	$(PIP_ENV) $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/runtime.txt
	touch $@

$(VENV)/.dev: $(VENV)/.created requirements/dev.txt
	$(PIP_ENV) $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

serve: $(VENV)/.runtime
	$(PY) -m lockd migrate
	$(PY) -m lockd serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check lockd tests fixtures bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(VENV)/.dev
	$(VENV)/bin/ruff check lockd tests fixtures bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Regenerates the hashed locks of lockd's own dependencies (needs uv: `make dev` provides it).
lock: $(VENV)/.dev
	cd requirements && $(PIP_ENV) ../$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q runtime.in -o runtime.txt
	cd requirements && $(PIP_ENV) ../$(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q dev.in -o dev.txt

fixture-index: $(VENV)/.dev
	$(PY) -m fixtures.index --port 8700

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
