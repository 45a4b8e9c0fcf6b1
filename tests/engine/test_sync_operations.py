"""`SyncEngine`'s methods for issue 15's operations, on SQLite and on PostgreSQL.

The walk is the clients' (tests/client/test_operations_client.py), so that the embedded engine
is checked to answer as the server does: the same arguments, results and refusal codes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relayflow.engine import SyncEngine
from relayflow.errors import EngineError
from relayflow.store import open_store
from tests.client.test_operations_client import run_operations
from tests.engine.helpers import sqlite_or_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A SQLite file, or a fresh PostgreSQL database."""
    yield from sqlite_or_postgres(request, "syncops_", f"sqlite:///{tmp_path / 'relayflow.db'}")


def test_the_embedded_engine_runs_every_operation(store_url: str) -> None:
    with SyncEngine(open_store(store_url)) as engine:
        run_operations(engine, EngineError)
        # What the engine refuses that the client checks before sending.
        with pytest.raises(ValueError, match="timezone-aware"):
            engine.count_executions("any", started_before="2020-01-01T00:00:00")
        with pytest.raises(EngineError) as info:
            engine.purge_executions(float("nan"))
        assert info.value.code == "InvalidArgument"
