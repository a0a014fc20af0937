"""The request servers' garbage-collector tuning (stockmanager/gc_tuning.py), run in a child
interpreter so the test process's own collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from stockmanager.gc_tuning import YOUNG_THRESHOLD


def test_start_up_objects_are_frozen_and_the_young_generation_is_collected_less_often() -> None:
    code = textwrap.dedent(
        """
        import gc, json
        import stockmanager.service_app  # a process's start-up: the app's modules loaded
        from stockmanager.gc_tuning import freeze_after_startup

        before = gc.get_threshold()
        freeze_after_startup()
        print(json.dumps({"before": before, "after": gc.get_threshold(),
                          "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(result.stdout)
    assert seen["enabled"]  # still collecting cycles, only less often
    assert seen["after"] == [YOUNG_THRESHOLD, *seen["before"][1:]]
    assert seen["frozen"] > 10_000  # the loaded modules, classes and functions
