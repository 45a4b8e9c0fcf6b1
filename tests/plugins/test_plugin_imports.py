"""Importing the plugin API loads neither the engine nor the FDL models (commands import it)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_relayflow_plugins_does_not_load_the_engine():
    code = (
        "import json, sys, relayflow.plugins; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('relayflow.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m.startswith(("relayflow.engine", "relayflow.fdl"))] == []
