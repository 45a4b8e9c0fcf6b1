"""The PostgreSQL writer writes values into its held-back statements as literals: hostile text.

Every value a write transaction holds back is rendered by `relayflow.store.postgres_sql.literal`
and sent inside the SQL text. These tests send text built to break quoting through every such
statement (flows, executions, events, outbox rows, timers, metadata, nonces, quarantine) and
read it back unchanged; a NUL, which PostgreSQL's text cannot hold, is refused for its own
request only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayflow.store import FlowRow, HistoryEvent, Store, StoreError, TimerRow, open_store
from relayflow.store.postgres_url import PINNED
from tests.store.conftest import PG_TABLES
from tests.store.rows import LONG, exec_row, now, read

psycopg = pytest.importorskip("psycopg")

HOSTILE = [
    "'",
    "''",
    "\\",
    "\\'",
    "E'",
    "$$",
    "$tag$",
    "--",
    "/*",
    "*/",
    ";",
    "%s",
    "%(x)s",
    "%%",
    "{",
    "}",
    "\n",
    "\r",
    "\t",
    "é",
    "𝄞",
    "\u2028",
    "\ufeff",
    "ARRAY[",
    "NULL",
    "'); DROP TABLE meta; --",
]

# Any text without NUL (PostgreSQL refuses it) or lone surrogates (not encodable as UTF-8),
# mixed with the fragments above, sometimes long. (Keys, such as a nonce's, stay short: an
# index entry holds at most about 2.7 kB.)
TEXT = st.lists(
    st.one_of(
        st.sampled_from(HOSTILE),
        st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    ),
    max_size=12,
).map("".join) | st.text(
    st.sampled_from(["'", "\\", "x", "é", ";"]), min_size=2_000, max_size=8_000
)

_names = itertools.count()


@pytest.fixture(scope="module")
def pg_store(pg_database: str) -> Iterator[Store]:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PG_TABLES}")
    store = open_store(pg_database)
    yield store
    store.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT)
def test_hostile_text_comes_back_from_every_held_back_statement(pg_store: Store, text: str) -> None:
    n = next(_names)
    flow = f"flow-{n}"
    definition = text or "x"
    with pg_store.transaction() as tx:
        tx.put_flow(FlowRow(flow, text, definition, text, "FDL", text, 1, 1.0, 2.0))
        execution_id = tx.insert_execution(exec_row(flow, f"e-{n}"))
        assert execution_id is not None
        tx.update_execution(
            execution_id,
            status="Running",
            state=text,
            output=text,
            error=text,
            cause=text,
            stopped=None,
        )
        tx.append_events(
            execution_id,
            [
                HistoryEvent(1, 0, "T", text, 1.0, {"v": text}),
                HistoryEvent(2, 1, text, "", 2.0, {}),
            ],
        )
        outbox_id = tx.add_outbox(execution_id, {"k": text, text: [text]}, text, now() + LONG)
        tx.add_timer(TimerRow(execution_id, 1, 5.0, text))
        tx.set_meta(f"m-{n}", text)
        tx.quarantine("state", execution_id, text, text)
        assert tx.use_nonce(f"nonce-{n}-{text[:200]}", now(), 60.0) is True
    with pg_store.reader() as tx:
        assert tx.get_flow(flow) == FlowRow(flow, text, definition, text, "FDL", text, 1, 1.0, 2.0)
        assert tx.flow_definition(flow, 1) == definition
        row = tx.get_execution(flow, f"e-{n}")
        assert (row.state, row.output, row.error, row.cause) == (text, text, text, text)
        events = tx.list_events(execution_id, 0, 10)
        assert [(e.step_name, e.type, e.detail) for e in events] == [
            (text, "T", {"v": text}),
            ("", text, {}),
        ]
        assert [(o.id, o.payload) for o in tx.list_outbox(execution_id)] == [
            (outbox_id, {"k": text, text: [text]})
        ]
        assert tx.list_timers(execution_id)[0].kind == text
        assert tx.get_meta(f"m-{n}") == text
    with pg_store.transaction() as tx:
        assert tx.use_nonce(f"nonce-{n}-{text[:200]}", now(), 60.0) is False
        found = tx.conn.execute(  # type: ignore[attr-defined]
            "SELECT data, reason FROM quarantine WHERE execution_id = %s", (execution_id,)
        ).fetchall()
        assert found == [(text, text)]


def test_a_nul_is_refused_for_its_own_request_only(pg_store: Store) -> None:
    # As the engine runs a batch: each request in a savepoint of its own.
    with pg_store.transaction() as tx:
        with tx.savepoint():
            tx.set_meta("nul-before", "kept")
        with pytest.raises(StoreError, match="NUL"), tx.savepoint():
            tx.set_meta("nul-bad-1", "fine")
            tx.set_meta("nul-bad-2", "a\x00b")
        with tx.savepoint():
            tx.set_meta("nul-after", "kept")
    assert read(pg_store, lambda tx: tx.get_meta("nul-before")) == "kept"
    assert read(pg_store, lambda tx: tx.get_meta("nul-after")) == "kept"
    assert read(pg_store, lambda tx: tx.get_meta("nul-bad-1")) is None
    assert read(pg_store, lambda tx: tx.get_meta("nul-bad-2")) is None


def test_settings_the_literals_rely_on_are_pinned_and_checked(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user's options cannot turn them off: they are set after the user's.
    url = pg_database + "?options=-c%20standard_conforming_strings%3Doff"
    store = open_store(url)
    with store.reader() as tx:
        conn: Any = tx.conn  # type: ignore[attr-defined]
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.info.parameter_status("client_encoding") == "UTF8"
    # A server that reports otherwise (a pooler dropping startup options) is refused.
    monkeypatch.setitem(PINNED, "integer_datetimes", "off")
    with pytest.raises(StoreError, match="integer_datetimes=on; relayflow needs"):
        store._connect()  # type: ignore[attr-defined]
    store.close()
