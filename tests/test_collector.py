"""`lockd serve` workers and `lockd lock` tune the cycle collector before they resolve."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from lockd.collector import tune_collector
from tests.support import ROOT


def test_tuning_freezes_start_up_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold()[0] >= 10_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_server_worker_is_tuned_when_its_app_is_made() -> None:
    code = (
        "import gc, os; from lockd.http.app import app_from_env; app_from_env(); "
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 0, flush=True); "
        # The app's service is never closed here (no lifespan ran): leave without joining its threads.
        "os._exit(0)"
    )
    env = {**os.environ, "LOCKD_DATABASE_URL": "sqlite:///:memory:", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert int(out[0]) >= 10_000 and out[1] == "True", out
