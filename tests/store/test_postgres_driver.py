"""What only the PostgreSQL store does: its URLs, schema, sessions, lost connections, listeners.

Everything a store must do is in the conformance suite (test_conformance*.py); these tests use
PostgreSQL directly (an admin connection) to look at and break what the driver does.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest

from relayflow.store import Store, StoreConflict, StoreError, open_store
from relayflow.store.postgres import PostgresStore
from relayflow.store.versions import META_KEY, SCHEMA_VERSION
from tests.store.rows import read, write

psycopg = pytest.importorskip("psycopg")

SECRET = "s3cr:t@/pw"  # a password with every character a URL treats specially
WAIT = 30.0


def _with_password(url: str, password: str) -> str:
    # The test server trusts every local connection: any password is accepted.
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def _backends(admin: Any, pg_url: str, query: str = "%") -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'relayflow' "
        "AND query LIKE %s",
        (pg_url.rsplit("/", 1)[1], query),
    ).fetchall()
    return [r[0] for r in rows]


def _until_gone(admin: Any, pg_url: str, query: str = "%") -> None:
    """Wait (bounded) until the server has ended the store's sessions: closing is asynchronous."""
    deadline = time.monotonic() + WAIT
    while _backends(admin, pg_url, query) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _backends(admin, pg_url, query) == []


# ---------------------------------------------------------------------------------------------
# URLs and messages


def test_both_schemes_open_the_store_and_the_password_is_never_shown(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RF_TEST_PASSWORD", SECRET)
    url = _with_password(pg_url, "${RF_TEST_PASSWORD}")
    for scheme in ("postgresql", "postgres"):
        store = open_store(url.replace("postgresql", scheme, 1))
        assert isinstance(store, PostgresStore)
        for shown in (repr(store), str(store), store.url, store.where):
            assert SECRET not in shown and quote(SECRET, safe="") not in shown
            assert "RF_TEST_PASSWORD" not in shown
        assert store.url == "postgresql://" + pg_url.split("://", 1)[1]
        write(store, lambda tx: tx.set_meta("k", "v"))
        store.close()
    # A quoted password in the URL itself works the same.
    store = open_store(_with_password(pg_url, quote(SECRET, safe="")))
    assert read(store, lambda tx: tx.get_meta("k")) == "v"
    store.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://u:PW@127.0.0.1:1/db", ["cannot connect", "u@127.0.0.1:1/db", "refused"]),
        ("postgresql://u:PW@127.0.0.1:99999/db", ["malformed", "USER[:PASSWORD]@HOST"]),
        ("postgresql://u:PW@h/db?sslmode=disable&pasword=PW", ["unknown option", "pasword"]),
        ("postgresql://u:${RF_TEST_UNSET}@h/db", ["RF_TEST_UNSET", "not set"]),
        # Unquoted special characters in the password: refused without showing any of it.
        ("postgresql://u:P/W@127.0.0.1/db", ["malformed", "quoted"]),
        ("postgresql://u:P?W@127.0.0.1/db", ["malformed"]),
        ("postgresql://u:P#W@127.0.0.1/db", ["malformed"]),
        ("postgresql://u:P?W=1&x@127.0.0.1/db", ["malformed"]),
    ],
)
def test_bad_urls_give_one_sentence_without_the_password(url: str, words: list[str]) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message and "PW" not in message and "P/W" not in message
    assert "W@" not in message and "W=" not in message


def test_a_missing_database_is_named(pg_url: str) -> None:
    url = _with_password(pg_url.rsplit("/", 1)[0] + "/no_such_database", quote(SECRET, safe=""))
    with pytest.raises(StoreError, match=r"no_such_database.*does not exist") as info:
        open_store(url)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(StoreError, match=r"install relayflow\[postgresql\]"):
        open_store("postgresql://u:pw@127.0.0.1:1/db")


# ---------------------------------------------------------------------------------------------
# Schema


def test_replicas_opening_an_empty_database_together_all_succeed(pg_url: str, admin: Any) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors and len(stores) == 4
    assert admin.execute("SELECT value FROM meta WHERE key = %s", (META_KEY,)).fetchall() == [
        (str(SCHEMA_VERSION),)
    ]
    assert all(getattr(s, "schema_version", None) == SCHEMA_VERSION for s in stores)
    write(stores[0], lambda tx: tx.set_meta("k", "v"))
    assert read(stores[3], lambda tx: tx.get_meta("k")) == "v"
    for store in stores:
        store.close()


def test_a_schema_written_by_a_newer_relayflow_is_refused(pg_url: str, admin: Any) -> None:
    open_store(pg_url).close()
    admin.execute("UPDATE meta SET value = %s WHERE key = %s", (str(SCHEMA_VERSION + 1), META_KEY))
    with pytest.raises(StoreError, match="newer relayflow"):
        open_store(pg_url)


def test_tables_are_tuned_for_churn(pg_url: str, admin: Any) -> None:
    open_store(pg_url).close()
    options = dict(
        admin.execute(
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
            "WHERE relname IN ('executions', 'outbox', 'timers', 'nonces')"
        ).fetchall()
    )
    assert "fillfactor=80" in options["executions"]
    for table in ("outbox", "timers", "nonces"):
        assert "autovacuum_vacuum_scale_factor=0.01" in options[table]


# ---------------------------------------------------------------------------------------------
# Sessions and connections


def test_session_settings(pg_url: str) -> None:
    store = open_store(pg_url)

    def settings(tx: Any) -> list[str]:
        names = ["idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout"]
        return [tx.conn.execute(f"SHOW {name}").fetchone()[0] for name in names]

    assert write(store, settings) == ["5s", "2s", "30s"]
    assert read(store, settings) == ["5s", "2s", "30s"]
    store.close()


def test_at_most_five_connections(pg_url: str, admin: Any) -> None:
    store = open_store(pg_url)

    async def busy() -> int:
        listener = await store.listen("relayflow_count", lambda payload: None)
        loop = asyncio.get_running_loop()
        calls = [
            loop.run_in_executor(None, read, store, lambda tx: time.sleep(0.05)) for _ in range(12)
        ] + [
            loop.run_in_executor(None, write, store, lambda tx: tx.set_meta("k", "v"))
            for _ in range(6)
        ]
        await asyncio.gather(*calls)
        count = len(_backends(admin, pg_url))
        await listener.close()
        return count

    assert 2 <= asyncio.run(busy()) <= 5
    store.close()
    _until_gone(admin, pg_url)


def test_a_connection_lost_before_commit_is_a_conflict(pg_url: str, admin: Any) -> None:
    store = open_store(pg_url)
    write(store, lambda tx: tx.set_meta("k", "old"))
    with pytest.raises(StoreConflict, match="nothing was written"), store.transaction() as tx:
        tx.set_meta("k", "new")
        assert tx.get_meta("k") == "new"  # the transaction has reached the server
        pid = tx.conn.info.backend_pid  # type: ignore[attr-defined]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        tx.set_meta("k", "newer")
    # The store connects again, and nothing of the lost transaction was written.
    assert read(store, lambda tx: tx.get_meta("k")) == "old"
    write(store, lambda tx: tx.set_meta("k", "after"))
    assert read(store, lambda tx: tx.get_meta("k")) == "after"
    store.close()


def test_a_connection_lost_during_commit_has_an_unknown_outcome(pg_url: str, admin: Any) -> None:
    store = open_store(pg_url)
    with pytest.raises(StoreError, match="outcome is unknown") as info, store.transaction() as tx:
        tx.set_meta("k", "v")
        conn = tx.conn  # type: ignore[attr-defined]
        execute = conn.execute

        def lose_at_commit(sql: Any, *args: Any, **kwargs: Any) -> Any:
            if sql == "COMMIT":
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return execute(sql, *args, **kwargs)

        conn.execute = lose_at_commit
    assert not isinstance(info.value, StoreConflict)
    write(store, lambda tx: tx.set_meta("k", "again"))
    store.close()


def test_a_connection_that_died_between_transactions_is_replaced(pg_url: str, admin: Any) -> None:
    store = open_store(pg_url)
    write(store, lambda tx: tx.set_meta("k", "v"))
    read(store, lambda tx: tx.get_meta("k"))
    for pid in _backends(admin, pg_url):
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    write(store, lambda tx: tx.set_meta("k", "w"))
    assert read(store, lambda tx: tx.get_meta("k")) == "w"
    store.close()


def test_an_idle_transaction_is_ended_by_the_server(pg_url: str, admin: Any) -> None:
    # As a frozen replica's would be; the URL shortens the 5 s for the test.
    url = pg_url + "?options=-c%20idle_in_transaction_session_timeout%3D200ms"
    frozen, other = open_store(url), open_store(pg_url)
    execution = write(frozen, lambda tx: tx.set_meta("k", "v"))
    assert execution is None
    with pytest.raises(StoreConflict), frozen.transaction() as tx:
        tx.set_meta("k", "frozen")
        assert tx.get_meta("k") == "frozen"  # sent: the transaction holds the row's lock
        pid = tx.conn.info.backend_pid  # type: ignore[attr-defined]
        deadline = time.monotonic() + WAIT
        while pid in _backends(admin, pg_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The lock is gone with the session: the other store takes it at once.
        write(other, lambda tx2: tx2.set_meta("k", "taken"))
        tx.set_meta("k", "late")
    assert read(other, lambda tx: tx.get_meta("k")) == "taken"
    frozen.close()
    other.close()


def test_a_notification_payload_must_fit(pg_url: str) -> None:
    store = open_store(pg_url)
    with pytest.raises(StoreError, match="longer than"), store.transaction() as tx:
        tx.notify("relayflow_end", "x" * 8000)
    store.close()


# ---------------------------------------------------------------------------------------------
# Listening


def test_a_listener_comes_back_after_a_lost_connection(pg_url: str, admin: Any) -> None:
    store, sender = open_store(pg_url), open_store(pg_url)

    async def main() -> list[str | None]:
        got: list[str | None] = []
        changed = asyncio.Event()

        def callback(payload: str | None) -> None:
            got.append(payload)
            changed.set()

        listener = await store.listen("relayflow_test", callback)
        loop = asyncio.get_running_loop()

        async def send(payload: str) -> None:
            changed.clear()
            await loop.run_in_executor(
                None, write, sender, lambda tx: tx.notify("relayflow_test", payload)
            )
            async with asyncio.timeout(WAIT):
                while payload not in got:
                    await changed.wait()
                    changed.clear()

        await send("before")
        for pid in _backends(admin, pg_url, "LISTEN%"):
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        async with asyncio.timeout(WAIT):
            while None not in got:
                changed.clear()
                await changed.wait()
        await send("after")
        await listener.close()
        return got

    assert asyncio.run(main()) == ["before", None, "after"]
    _until_gone(admin, pg_url, "LISTEN%")
    store.close()
    sender.close()


def test_an_outbox_row_deleted_behind_a_locked_execution_dooms_the_transaction(
    pg_url: str, admin: Any
) -> None:
    # delete_outbox answers from what lock_execution read; if another transaction deleted
    # the row without locking its execution, the answer was wrong and nothing may commit.
    from tests.store.rows import LONG, exec_row, now

    store = open_store(pg_url)

    def seed(tx: Any) -> tuple[int, int]:
        execution_id = tx.insert_execution(exec_row())
        return execution_id, tx.add_outbox(execution_id, {"n": 1}, "me", now() + LONG)

    execution_id, row_id = write(store, seed)
    with pytest.raises(StoreConflict, match="run the transaction again"), store.transaction() as tx:
        tx.lock_execution(execution_id)
        admin.execute("DELETE FROM outbox WHERE id = %s", (row_id,))
        assert tx.delete_outbox(row_id) is True
        tx.set_meta("acted", "on a wrong answer")
    assert read(store, lambda tx: tx.get_meta("acted")) is None
    store.close()


def test_lock_executions_locks_in_one_statement_and_answers_from_memory(
    pg_url: str, admin: Any
) -> None:
    from tests.store.rows import LONG, exec_row, now

    store, other = open_store(pg_url), open_store(pg_url)

    def seed(tx: Any) -> tuple[int, int, int]:
        a = tx.insert_execution(exec_row("f", "a"))
        b = tx.insert_execution(exec_row("f", "b"))
        return a, b, tx.add_outbox(a, {"n": 1}, "me", now() + LONG)

    a, b, row_id = write(store, seed)
    with store.transaction() as tx:
        tx.lock_executions([("f", "a"), ("f", "b"), ("f", "missing")])
        # Held: the other store's locking read waits for this transaction (lock_timeout 2 s).
        with pytest.raises(StoreConflict):
            write(other, lambda tx2: tx2.lock_execution(a))
        tx.update_execution(
            a, status="Running", state='{"s": 2}', output=None, error="", cause="", stopped=None
        )
        assert tx.lock_execution(a).state == '{"s": 2}'
        assert tx.get_execution("f", "b", lock=True).id == b
        assert tx.delete_outbox(row_id) is True
        assert tx.delete_outbox(row_id) is False
        with pytest.raises(KeyError), tx.savepoint():
            tx.update_execution(
                b, status="Failed", state="{}", output=None, error="", cause="", stopped=1.0
            )
            raise KeyError("undone")
        assert tx.lock_execution(b).status == "Running"  # read again after the rollback
    assert read(store, lambda tx: tx.get_execution("f", "a")).state == '{"s": 2}'
    assert read(store, lambda tx: tx.list_outbox(a)) == []
    store.close()
    other.close()


def test_values_written_into_held_back_statements_come_back_exactly(pg_url: str) -> None:
    # The writer sends held-back statements with their values written in as literals.
    from relayflow.store import TimerRow

    store = open_store(pg_url)
    tricky = ["it's", "back\\slash\\'", "%s %(x)s %%", "ünïcödé ✓ 𝄞", "'; DROP TABLE meta; --", ""]
    times = [0.1 + 0.2, 1e-300, -2.5, 1796182030.2791234, float("inf")]
    with store.transaction() as tx:
        for i, text in enumerate(tricky):
            tx.set_meta(f"k{i}", text)
        for i, at in enumerate(times):
            tx.add_timer(TimerRow(-7, i, at, tricky[i % len(tricky)]))
    with store.reader() as tx:
        assert [tx.get_meta(f"k{i}") for i in range(len(tricky))] == tricky
        assert [t.fire_at for t in tx.list_timers(-7)] == times
    with pytest.raises(StoreError, match="NUL"), store.transaction() as tx:
        tx.set_meta("k", "a\x00b")
    store.close()


def test_lock_executions_of_one_key(pg_url: str) -> None:
    from tests.store.rows import LONG, exec_row, now

    store, other = open_store(pg_url), open_store(pg_url)

    def seed(tx: Any) -> tuple[int, int]:
        a = tx.insert_execution(exec_row("f", "a"))
        return a, tx.add_outbox(a, {"n": 1}, "me", now() + LONG)

    a, row_id = write(store, seed)
    store.memory.clear()  # type: ignore[attr-defined]  # else its first message locks them
    with store.transaction() as tx:
        tx.lock_executions([("f", "a")])
        with pytest.raises(StoreConflict):
            write(other, lambda tx2: tx2.get_execution("f", "a", lock=True))
        assert tx.lock_execution(a).name == "a"
        assert tx.delete_outbox(row_id) is True
        tx.lock_executions([("f", "missing")])
    assert read(store, lambda tx: tx.list_outbox(a)) == []
    store.close()
    other.close()


def test_a_timer_deleted_behind_a_locked_execution_dooms_the_transaction(
    pg_url: str, admin: Any
) -> None:
    from relayflow.store import TimerRow
    from tests.store.rows import exec_row

    store = open_store(pg_url)

    def seed(tx: Any) -> int:
        execution_id = tx.insert_execution(exec_row())
        tx.add_timer(TimerRow(execution_id, 1, 10.0, "wait"))
        return execution_id

    execution_id = write(store, seed)
    with pytest.raises(StoreConflict, match="run the transaction again"), store.transaction() as tx:
        tx.lock_executions([("f", "e1")])
        admin.execute("DELETE FROM timers WHERE execution_id = %s", (execution_id,))
        assert tx.delete_timer(execution_id, 1) is True
        tx.set_meta("acted", "on a wrong answer")
    assert read(store, lambda tx: tx.get_meta("acted")) is None
    store.close()


def test_prepared_statements_survive_rollbacks_and_come_back_on_a_new_connection(
    pg_url: str, admin: Any
) -> None:
    # The writer's frequent statements are prepared on its connection (postgres_sql.NAMED).
    from tests.store.rows import exec_row

    store = open_store(pg_url)
    execution_id = write(store, lambda tx: tx.insert_execution(exec_row()))

    def update(state: str) -> Any:
        return lambda tx: tx.update_execution(
            execution_id,
            status="Running",
            state=state,
            output=None,
            error="",
            cause="",
            stopped=None,
        )

    write(store, update('{"n": 1}'))
    with store.transaction() as tx:  # a ROLLBACK TO SAVEPOINT, then a ROLLBACK
        tx.get_meta("k")
        with pytest.raises(KeyError), tx.savepoint():
            tx.get_meta("k")
            raise KeyError("undone")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.get_meta("k")
        raise RuntimeError("rolled back")
    write(store, update('{"n": 2}'))
    for pid in _backends(admin, pg_url):  # the writer's connection dies between transactions
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    write(store, update('{"n": 3}'))
    assert read(store, lambda tx: tx.get_execution("f", "e1")).state == '{"n": 3}'
    store.close()
