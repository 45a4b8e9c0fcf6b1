"""The PostgreSQL writer's buffer: statements held back and sent with the next query.

`Buffered` is the plumbing of `relayflow.store.postgres_tx`'s transactions: running
statements, holding back those whose result nobody needs and sending them in one message with
the next query, savepoints, turning psycopg's errors into the store's, and the execution rows
and outbox ids the transaction has locked (answered from memory).
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from relayflow.store.base import ExecutionRow, StoreConflict, StoreError
from relayflow.store.postgres_bulk import Bulk
from relayflow.store.postgres_memory import XID_MASK, Remembered
from relayflow.store.postgres_sql import (
    GUARD_MANY,
    GUARD_ONE,
    MISSED,
    MISSED_STATE,
    Array,
    execute_named,
    render,
)

if TYPE_CHECKING:
    import psycopg

    from relayflow.store.postgres_memory import WriterMemory

__all__ = ["FETCH", "GONE_STATES", "Buffered", "lost"]


class Buffered:
    """One transaction on one psycopg connection (autocommit; BEGIN and COMMIT are the store's).

    The writer's statements whose result nobody needs (events, state updates, new outbox rows
    and timers, savepoints) wait in a buffer and go to the server together with the next
    statement whose result is needed, as one message of several statements with their values
    written in (one round trip), or before COMMIT.
    Between calls nothing is left half-sent: the session is idle in its transaction, where
    `idle_in_transaction_session_timeout` ends a replica frozen mid-transaction. An error of
    a buffered statement comes back with a later call, so a database error there dooms the
    whole transaction (it cannot be told which savepoint it belonged to).

    Args:
        conn: the connection (autocommit).
        reword: turns a psycopg error into the `StoreError` to raise (and says whether it
            dooms the transaction).
        read_only: refuse writes (the reader's view).
        buffered: hold back statements whose results are not needed (the writer).
        prune_nonces: asked by `use_nonce` whether it is time to forget old nonces.
        outbox_ids: new outbox ids, taken from the end; `_fill_ids` adds a block when empty.
        outbox_sequence: the sequence outbox ids come from.
        execution_ids: new execution ids, taken like ``outbox_ids``.
        execution_sequence: the sequence execution ids come from.
        begin: the statement that begins the transaction, sent with the first message.
        named: the connection has the writer's frequent statements prepared (and a new one
            from ``reconnect`` has them too).
        reconnect: a new connection in place of one found dead by that first message.
        memory: the writer's memory of what it committed, to skip locking reads
            (`relayflow.store.postgres_memory`).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        reword: Callable[[Exception], tuple[StoreError, bool]],
        *,
        read_only: bool = False,
        buffered: bool = False,
        prune_nonces: Callable[[float], bool] | None = None,
        outbox_ids: list[int] | None = None,
        outbox_sequence: str = "outbox_id_seq",
        execution_ids: list[int] | None = None,
        execution_sequence: str = "executions_id_seq",
        begin: str | None = None,
        reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
        named: bool = False,
        memory: WriterMemory | None = None,
    ) -> None:
        self.conn = conn
        self._cur = conn.cursor()
        self._reword = reword
        self.read_only = read_only
        self._buffered = buffered
        # Held-back statements, their values written in (so that a value the database cannot
        # take is refused by the call that gave it), and how many rows each must touch (-1:
        # any number); and runs of frequent writes gathered per table (`Bulk`).
        self._pending: list[tuple[str, int] | Bulk] = []
        # BEGIN goes with the first message; if the connection turns out to have died
        # before it (between transactions), that message is sent again on a new one.
        if begin is not None:
            self._pending.append((begin, -1))
        self._reconnect = reconnect
        self._named = named  # the connection has `postgres_sql.NAMED` prepared
        # The outbox rows of executions this transaction has locked, by id: their execution.
        self._outbox_rows: dict[int, int] = {}
        self._locked: set[int] = set()  # the executions whose outbox rows and timers are known
        self._timers: set[tuple[int, int]] = set()  # their timers: (execution id, timer id)
        # Execution rows this transaction has locked, by id, and their ids by (flow, name).
        self._rows: dict[int, ExecutionRow] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        # Flows read in this transaction (the writer's: starts of one batch read one flow).
        self._flows: dict[str, Any] = {}
        self._sends = 0  # how many times the buffer went out
        self._prune_nonces = prune_nonces
        self._outbox_ids = outbox_ids if outbox_ids is not None else []
        self._outbox_sequence = outbox_sequence
        self._execution_ids = execution_ids if execution_ids is not None else []
        self._execution_sequence = execution_sequence
        # Executions the batch's `lock_executions` looked for and did not find (new names).
        self._absent: set[tuple[str, str]] = set()
        #: The writer's memory of the executions it committed (`postgres_memory`), if used.
        self.memory = memory
        self._written: set[int] = set()  # executions this transaction inserted or updated
        self.doomed: StoreError | None = None
        #: Whether a COMMIT went with the held-back statements (`flush`): if the connection
        #: was then lost, whether the transaction committed is unknown.
        self.commit_sent = False
        #: The SQLSTATE of the last message that failed, if the server gave one.
        self.failed_state: str | None = None
        self.notices: list[tuple[str, str]] = []
        #: The rows of held-back statements sent with `FETCH` (`postgres_memory`), in order:
        #: the guard's (`trusted`) and `TRANSACTION_ID`'s, each this transaction's id.
        self.fetched: list[list[Any]] = []
        #: The executions this transaction took from the writer's memory instead of locking
        #: and reading them first (`postgres_memory`); its first message guards them.
        self.trusted: list[tuple[str, str]] = []
        self._depth = 0

    # -- plumbing -----------------------------------------------------------------------------
    def _failed(self, exc: Exception, *, buffered: bool = False) -> StoreError:
        error, dooms = self._reword(exc)
        if (dooms or buffered) and self.doomed is None:
            self.doomed = error
        return error

    def _run(self, sql: str, args: Sequence[Any] | None = None) -> None:
        """A statement whose result is not needed: held back in the writer, else run now."""
        if self.doomed is not None:
            raise self.doomed
        if self._buffered:
            self._pending.append((self._render(sql, args), -1))
            return
        try:
            self._cur.execute(sql, args)
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            raise self._failed(exc) from None

    def _send(self, queries: Sequence[tuple[str, Sequence[Any] | None]] = ()) -> list[list[Any]]:
        """Send the held-back statements and ``queries`` at once; the queries' rows.

        They go as one message of several statements, with their values written in (a simple
        query): one round trip, one wakeup of the server, whatever their number.
        """
        if not self._pending and len(queries) <= 1:
            return self._send_alone(queries)
        pending: list[tuple[str, int]] = []
        for item in self._pending:
            if isinstance(item, Bulk):
                pending += [(text, -1) for text in item.statements(self._render)]
            else:
                pending.append(item)
        self._pending = []
        texts = [text for text, _ in pending]
        texts += [self._render(sql, args) for sql, args in queries]
        # A message with COMMIT is never sent again: it may have committed.
        first = self._sends == 0 and self._reconnect is not None and not self.commit_sent
        self._sends += 1 if pending else 0
        try:
            cur = self._execute(";\n".join(texts), retry=first)
            missed = 0
            for _, rows in pending:
                if rows >= 0 and cur.rowcount != rows:
                    missed += 1
                elif rows == FETCH:
                    self.fetched.append(cur.fetchall())
                cur.nextset()
            results = []
            for _ in queries:
                results.append(cur.fetchall())
                cur.nextset()
        except Exception as exc:
            if not _is_psycopg(exc):
                if pending and self.doomed is None:  # they may not have run: never commit
                    self.doomed = StoreError(f"sending held-back statements failed: {exc!r}")
                raise
            self.failed_state = getattr(exc, "sqlstate", None)
            if self.failed_state == MISSED_STATE:
                self.doomed = StoreConflict(MISSED)
                raise self.doomed from None
            raise self._failed(exc, buffered=bool(pending)) from None
        if missed:
            # An outbox row or timer said to be deleted was gone after all, or a new
            # execution's name was taken meanwhile (`delete_outbox`, `insert_execution`): this
            # transaction acted on a wrong answer, so it must not commit.
            self.doomed = StoreConflict(MISSED)
            raise self.doomed
        return results

    def _execute(self, text: str, *, retry: bool) -> Any:
        """Run a message of statements, with ``retry`` once more if the connection was dead.

        Only a transaction's first message is sent again, on a new connection: nothing of the
        transaction had reached the server.
        """
        try:
            cur = self.conn.cursor()
            cur.execute(text, prepare=False)
            return cur
        except Exception as exc:
            if not (retry and _is_psycopg(exc) and lost(exc)) or self._reconnect is None:
                raise
        self.conn = self._reconnect()
        self._cur = self.conn.cursor()
        cur = self.conn.cursor()
        cur.execute(text, prepare=False)
        return cur

    @property
    def begun(self) -> bool:
        """Whether anything of the transaction (its BEGIN first) was sent."""
        return self._sends > 0

    def _send_alone(self, queries: Sequence[tuple[str, Sequence[Any] | None]]) -> list[list[Any]]:
        """One query and nothing held back: as a prepared statement."""
        if not queries:
            return []
        try:
            cur = self.conn.cursor()
            cur.execute(*queries[0])
            return [cur.fetchall()]
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            raise self._failed(exc) from None

    def _render(self, sql: str, args: Sequence[Any] | None) -> str:
        # Safe: the store only keeps connections with the settings literals rely on
        # (see `relayflow.store.postgres_sql`).
        if not args:
            return sql
        if self._named:
            executed = execute_named(sql, args)
            if executed is not None:
                return executed
        return render(sql, args)

    def flush(self, *, commit: bool = False) -> bool:
        """Send every held-back statement now; with ``commit``, COMMIT with them if it can.

        COMMIT goes in the same message (a round trip less) when the transaction has sent
        something already, so that its connection was alive a moment ago (a first message
        is sent again on a new connection if the old one was dead, which a COMMIT must never
        be), and when every check of a row count is made in the server (a message stops at
        its first error, before its COMMIT).

        Returns:
            Whether the transaction committed.

        Raises:
            StoreError: one of them failed (the transaction is doomed); after a COMMIT was
                sent, see `commit_sent`.
        """
        if self.doomed is not None:
            raise self.doomed
        folds = (
            commit
            and bool(self._pending)
            and all(isinstance(item, Bulk) or item[1] < 0 for item in self._pending)
            and (self._sends > 0 or (bool(self.trusted) and self._alive()))
        )
        if folds:
            self._pending.append(("COMMIT", -1))
            self.commit_sent = True
        self._send()
        return folds

    def _alive(self) -> bool:
        """Whether the connection looks alive, replacing it first if it does not.

        For a first message that carries COMMIT (a batch that trusts the writer's memory has
        nothing to send before it): such a message is never sent again, so a connection the
        server closed while idle (which then has its farewell or end of file to read) is
        replaced before, not found dead by it.
        """
        if self._reconnect is None or self.conn.closed or self.conn.broken:
            return False
        try:
            readable, _, _ = select.select([self.conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            readable = [True]
        if readable:
            try:
                self.conn = self._reconnect()
            except Exception:  # the message goes without COMMIT and meets the error itself
                return False
            self._cur = self.conn.cursor()
        return True

    def fetch_later(self, sql: str) -> None:
        """Hold back ``sql`` (no arguments) and keep its rows in `fetched` when it is sent."""
        self._pending.append((sql, FETCH))

    def _fetch(self, sql: str, args: Sequence[Any] | None, many: bool) -> Any:
        if self.doomed is not None:
            raise self.doomed
        rows = self._send([(sql, args)])[0]
        return rows if many else (rows[0] if rows else None)

    def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        """The first row of a statement's result (None without one)."""
        return self._fetch(sql, args, False)

    def _all(self, sql: str, args: Sequence[Any] | None = None) -> list[Any]:
        """Every row of a statement's result."""
        rows: list[Any] = self._fetch(sql, args, True)
        return rows

    def _bulk(self, timer: tuple[int, int] | None = None) -> Bulk:
        """Where the writer gathers a frequent write's rows: the run of them held back last.

        A new run starts after any other statement, and before a ``timer`` that the last run
        deletes (see `relayflow.store.postgres_bulk` for why the order then holds).
        """
        if self.doomed is not None:
            raise self.doomed
        last = self._pending[-1] if self._pending else None
        if isinstance(last, Bulk) and (timer is None or not last.conflicts(timer)):
            return last
        bulk = Bulk()
        self._pending.append(bulk)
        return bulk

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("this is a read-only view of the store")

    def _forget_outbox(self, execution_id: int) -> None:
        self._locked.discard(execution_id)
        self._timers = {t for t in self._timers if t[0] != execution_id}
        for outbox_id in [k for k, v in self._outbox_rows.items() if v == execution_id]:
            del self._outbox_rows[outbox_id]

    def _write(self, sql: str, args: Sequence[Any] | None = None) -> None:
        self._check_writable()
        self._run(sql, args)

    def _write_one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        self._check_writable()
        return self._one(sql, args)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested scope: an exception inside it undoes only what it wrote, then propagates."""
        self._depth += 1
        name = f"rf{self._depth}"
        notices = len(self.notices)
        self._run(f"SAVEPOINT {name}")
        # Where the SAVEPOINT waits in the buffer, while the buffer has not been sent.
        sends, index = self._sends, len(self._pending) - 1
        try:
            yield
        except BaseException:
            del self.notices[notices:]
            if self.doomed is None:
                self._roll_back_to(name, sends, index)
            raise
        finally:
            self._depth -= 1
        if self._buffered and self._sends == sends and self.doomed is None:
            # Nothing of it was sent: its statements simply go without the savepoint, and its
            # rows join those held back before it where they can.
            del self._pending[index]
            if 0 < index < len(self._pending):
                before, after = self._pending[index - 1], self._pending[index]
                if isinstance(before, Bulk) and isinstance(after, Bulk) and before.absorb(after):
                    del self._pending[index]
        else:
            self._run(f"RELEASE SAVEPOINT {name}")

    def _roll_back_to(self, name: str, sends: int, index: int) -> None:
        self._forget_rows()  # what it knew may have been undone
        if self._buffered and self._sends == sends:
            del self._pending[index:]  # nothing of it was sent: forget it
            return
        self._pending.clear()  # what it wrote since the last send: never sent
        try:
            # Outside any pipeline: psycopg drops its prepared statements on seeing a
            # ROLLBACK, which must not happen while statements naming them are in flight.
            self._cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self._cur.execute(f"RELEASE SAVEPOINT {name}")
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            self._failed(exc, buffered=True)

    def _trust(self, recalled: Sequence[Remembered]) -> None:
        """Take the batch's executions from the writer's memory, behind a guard.

        The guard goes first in the first message: it locks them and fails the message (and its
        COMMIT) unless each row is still the version remembered (`postgres_memory`).
        """
        for entry in recalled:
            self._keep(entry.row)
            self._outbox_rows.update(dict.fromkeys(entry.outbox, entry.row.id))
            self._timers.update(entry.timers)
        if len(recalled) == 1:
            guard = self._render(GUARD_ONE, (recalled[0].row.id, recalled[0].version))
        else:
            ids = Array([entry.row.id for entry in recalled], "bigint")
            versions = Array([entry.version for entry in recalled], "bigint")
            guard = self._render(GUARD_MANY, (ids, versions, len(recalled)))
        self._pending.append((guard, FETCH))  # it answers this transaction's id
        self.trusted = [(entry.row.flow_name, entry.row.name) for entry in recalled]
        self._absent = set()

    def written_keys(self) -> list[tuple[str, str]]:
        """The (flow, name) of the executions this transaction wrote, of those it knows."""
        rows = self._rows
        return [(r.flow_name, r.name) for r in (rows.get(i) for i in self._written) if r]

    def written_rows(self) -> list[Remembered]:
        """The executions this transaction wrote and knows, as it committed them.

        Their version is this transaction's id, which the guard of its first message answers
        (`GUARD_ONE`) or else its last message (`TRANSACTION_ID`); none without either.
        """
        if not self.fetched or not self.fetched[-1]:
            return []
        version = int(self.fetched[-1][0][0]) & XID_MASK
        # One pass over what the transaction knows, not one per execution (a batch may hold
        # a thousand of each).
        outbox: dict[int, list[int]] = {}
        for outbox_id, execution_id in self._outbox_rows.items():
            outbox.setdefault(execution_id, []).append(outbox_id)
        timers: dict[int, list[tuple[int, int]]] = {}
        for timer in self._timers:
            timers.setdefault(timer[0], []).append(timer)
        found = []
        for execution_id in self._written:
            row = self._rows.get(execution_id)
            if row is None or execution_id not in self._locked:
                continue  # forgotten after a savepoint rolled back: not known for sure
            found.append(
                Remembered(
                    row,
                    version,
                    tuple(outbox.get(execution_id, ())),
                    tuple(timers.get(execution_id, ())),
                )
            )
        return found

    def _keep(self, row: ExecutionRow) -> None:
        """Remember a row this transaction has locked (and so nobody else changes)."""
        self._rows[row.id] = row
        self._by_key[row.flow_name, row.name] = row.id
        self._locked.add(row.id)

    def _know_work(self, rows: Sequence[Any]) -> None:
        """Remember the outbox rows and timers of locked executions (see `_PgTx`'s queries)."""
        for kind, execution_id, key in rows:
            if kind == "o":
                self._outbox_rows[int(key)] = int(execution_id)
            else:
                self._timers.add((int(execution_id), int(key)))

    def _forget_rows(self) -> None:
        """Forget every remembered row: a savepoint rolled back may have changed them."""
        self._rows.clear()
        self._by_key.clear()
        self._flows.clear()
        self._outbox_rows.clear()
        self._locked.clear()
        self._timers.clear()


#: The count a held-back statement carries when its rows are wanted (`Buffered.fetch_later`).
FETCH = -2


def _is_psycopg(exc: BaseException) -> bool:
    # psycopg is imported lazily by the store; its errors all derive from psycopg.Error.
    import psycopg

    return isinstance(exc, psycopg.Error)


#: SQLSTATEs of a session the server ended: shutdown, crash, idle-in-transaction timeout.
GONE_STATES = frozenset({"57P01", "57P02", "57P03", "25P03"})


def lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone (so the transaction is gone with it)."""
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith("08") or state in GONE_STATES)
    # Errors without a SQLSTATE come from the client side: the socket closed, the server
    # vanished. psycopg raises them as OperationalError (InterfaceError when already closed).
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
