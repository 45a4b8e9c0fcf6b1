"""Reads and writes of one PostgreSQL transaction (`relayflow.store.postgres`'s `Transaction`).

Leases are measured on the database's clock, so that every replica agrees on when one runs
out: a claim or renewal reads its ``lease_until - now`` as a duration and stores the database's
`clock_timestamp()` plus that duration; "expired" means before the database's clock. Timers
are due by the caller's ``now`` (their ``fire_at`` was set by an engine's clock).

An error that aborted the transaction (a deadlock, a serialization failure, a lock timeout, a
lost connection) is raised as `StoreConflict` and dooms the transaction: every later call
raises it again without touching the database, and the transaction can only roll back, even if
the caller caught the first one in a savepoint.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from relayflow import jsontext
from relayflow.store import decoding
from relayflow.store import postgres_sql as q
from relayflow.store.base import (
    ExecutionRow,
    FlowRow,
    OutboxRow,
    StoreError,
    TimerRow,
    Transaction,
)
from relayflow.store.postgres_buffer import Buffered
from relayflow.store.postgres_objects import _ObjectsMixin
from relayflow.store.postgres_operations import _OperationsMixin, filters
from relayflow.store.records import HistoryEvent

__all__: list[str] = []


class _PgTx(Buffered, _ObjectsMixin, _OperationsMixin, Transaction):
    """The store's operations on a `Buffered` connection (see the module docstring)."""

    # -- metadata -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_meta_if_absent(self, key: str, value: str) -> str:
        row = self._write_one(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING "
            "RETURNING value",
            (key, value),
        )
        if row is not None:
            return str(row[0])
        # Another transaction's value won; a new statement sees it once it has committed.
        found = self.get_meta(key)
        assert found is not None
        return found

    def use_nonce(self, key: str, now: float, window: float) -> bool:
        self._check_writable()
        if self._prune_nonces is not None and self._prune_nonces(now):
            self._write("DELETE FROM nonces WHERE seen < %s", (now - window,))
        # A nonce seen before the window counts as new: it replaces the old row.
        row = self._write_one(
            "INSERT INTO nonces (key, seen) VALUES (%s, %s) ON CONFLICT (key) "
            "DO UPDATE SET seen = excluded.seen WHERE nonces.seen < %s RETURNING 1",
            (key, now, now - window),
        )
        return row is not None

    # -- flows --------------------------------------------------------------------------------
    def get_flow(self, name: str, *, lock: bool = False) -> FlowRow | None:
        if not lock and name in self._flows:
            found: FlowRow | None = self._flows[name]
            return found
        row = self._one(q.GET_FLOW + " FOR UPDATE" if lock else q.GET_FLOW, (name,))
        found = FlowRow(*row) if row else None
        if self._buffered:
            # Read once a transaction (the starts of a batch read one flow again and again);
            # this transaction's own changes to it forget it.
            self._flows[name] = found
        return found

    def create_flow(self, row: FlowRow) -> bool:
        self._forget_flow(row.name)
        created = self._write_one(
            f"INSERT INTO flows ({q.FLOW_COLUMNS}) VALUES {q.FLOW_VALUES} "
            "ON CONFLICT (name) DO NOTHING RETURNING 1",
            _flow_values(row),
        )
        if created is None:
            return False
        self._write(q.UPSERT_VERSION, (row.name, row.version, row.definition))
        return True

    def put_flow(self, row: FlowRow) -> None:
        self._forget_flow(row.name)
        self._write(
            f"INSERT INTO flows ({q.FLOW_COLUMNS}) VALUES {q.FLOW_VALUES} "
            "ON CONFLICT (name) DO UPDATE SET id = excluded.id, "
            "definition = excluded.definition, description = excluded.description, "
            "type = excluded.type, role_arn = excluded.role_arn, version = excluded.version, "
            "created = excluded.created, modified = excluded.modified, "
            "execution_mode = excluded.execution_mode, environment = excluded.environment",
            _flow_values(row),
        )
        self._write(q.UPSERT_VERSION, (row.name, row.version, row.definition))

    def _forget_flow(self, name: str) -> None:
        """Forget what this transaction read of a flow it changes."""
        for key in [k for k in self._flows if k == name or k.startswith(name + "\x00")]:
            del self._flows[key]

    def flow_versions(self, name: str) -> list[tuple[int, str]]:
        rows = self._all(
            "SELECT version, definition FROM flow_versions WHERE name = %s ORDER BY version",
            (name,),
        )
        return [(int(r[0]), r[1]) for r in rows]

    def flow_definition(self, name: str, version: int) -> str | None:
        key = f"{name}\x00{version}"  # beside the flows' names, which hold no NUL
        if key in self._flows:
            found: str | None = self._flows[key]
            return found
        row = self._one(q.FLOW_DEFINITION, (name, version))
        definition = row[0] if row else None
        if self._buffered:
            self._flows[key] = definition
        return definition

    def list_flows(self, after: str, limit: int) -> list[FlowRow]:
        rows = self._all(
            f"SELECT {q.FLOW_COLUMNS} FROM flows WHERE name > %s ORDER BY name LIMIT %s",
            (after, limit),
        )
        return [FlowRow(*r) for r in rows]

    def delete_flow(self, name: str) -> bool:
        self._check_writable()
        self._forget_rows()
        # The flow, then its executions in the engine's lock order, as every command locks
        # them: a command on another replica either finishes first or finds nothing.
        self._all("SELECT 1 FROM flows WHERE name = %s FOR UPDATE", (name,))
        ids = [
            int(r[0])
            for r in self._all(
                "SELECT id FROM executions WHERE flow_name = %s ORDER BY name FOR UPDATE", (name,)
            )
        ]
        if ids:
            for table in ("events", "timers", "outbox", "quarantine"):
                self._write(f"DELETE FROM {table} WHERE execution_id = ANY(%s)", (ids,))
            self._write(
                "DELETE FROM execution_links WHERE child_id = ANY(%s) OR parent_id = ANY(%s)",
                (ids, ids),
            )
            self._write("DELETE FROM executions WHERE id = ANY(%s)", (ids,))
        self._write("DELETE FROM flow_versions WHERE name = %s", (name,))
        self._write("DELETE FROM flow_objects WHERE flow_name = %s", (name,))
        deleted = self._write_one("DELETE FROM flows WHERE name = %s RETURNING 1", (name,))
        return deleted is not None

    # -- executions ---------------------------------------------------------------------------
    def insert_execution(self, row: ExecutionRow) -> int | None:
        values = row.insert_values()
        key = (row.flow_name, row.name)
        if self._buffered and key in self._absent:
            # The batch's locking read found no execution of this name: it is new unless
            # another replica inserts one meanwhile, which the insert's row count tells at the
            # next round trip (the transaction is then run again and finds that one). So it
            # is held back with the batch's other rows, under an id taken ahead.
            self._check_writable()
            q.check_text(*(v for v in values if isinstance(v, str)))
            self._absent.discard(key)
            new_id = self._new_id(self._execution_ids, self._execution_sequence)
            self._bulk().executions.append((new_id, *values))
            self._keep(dataclasses.replace(row, id=new_id))
            self._written.add(new_id)
            return new_id
        found = self._write_one(q.INSERT_EXECUTION, values)
        if not found:
            return None
        new_id = int(found[0])
        if self._buffered:
            # This transaction's own new row, which no other can see or change until it
            # commits, with no outbox rows or timers yet: the start's locking read that
            # follows is answered from memory instead of a round trip.
            self._keep(dataclasses.replace(row, id=new_id))
            self._written.add(new_id)
        return new_id

    def get_execution(
        self, flow_name: str, name: str, *, lock: bool = False
    ) -> ExecutionRow | None:
        if lock and (flow_name, name) in self._by_key:
            return self._rows[self._by_key[flow_name, name]]
        sql = f"SELECT {q.EXEC_COLUMNS} FROM executions WHERE flow_name = %s AND name = %s"
        if self.read_only and not self.doomed:
            return self._describe(sql, flow_name, name)
        row = self._one(sql + " FOR UPDATE" if lock else sql, (flow_name, name))
        if row is None:
            return None
        found = ExecutionRow(*row)
        if lock and self._buffered:
            self._keep(found)
        return found

    def _describe(self, sql: str, flow_name: str, name: str) -> ExecutionRow | None:
        """An execution read for people, with its flow and definition in the same round trip.

        DescribeExecution and its long polls read all three, one after the other; the
        snapshot of a read-only view keeps them consistent, so the later reads are answered
        from memory (`get_flow`, `flow_definition`).
        """
        key = (flow_name, name)
        rows, flows, definitions = self._send(
            [(sql, key), (q.GET_FLOW, (flow_name,)), (q.DEFINITION_OF_EXECUTION, key)]
        )
        if not rows:
            return None
        found = ExecutionRow(*rows[0])
        self._flows[flow_name] = FlowRow(*flows[0]) if flows else None
        if definitions:
            self._flows[f"{flow_name}\x00{found.flow_version}"] = definitions[0][0]
        return found

    def lock_executions(self, keys: Sequence[tuple[str, str]]) -> None:
        """Lock these executions (flow, name) now, in this order, in one round trip.

        A hint from the engine at the start of a batch: the locking reads of its jobs are then
        answered from memory (`lock_execution`, `get_execution` with ``lock``), and so are
        `delete_outbox` of their outbox rows and `delete_timer` (without an owner) of their
        timers. Keys must come sorted (the engine's lock order); unknown ones are skipped.
        """
        if not keys or not self._buffered:
            return
        if self.memory is not None and self._sends == 0:
            recalled = self.memory.recall(keys)
            if recalled is not None:
                self._trust(recalled)
                return
        lock: tuple[str, Sequence[Any]]
        work_of: tuple[str, Sequence[Any]]
        new_flows: tuple[str, Sequence[Any]]
        if len(keys) == 1:
            # One execution (a report, a stop): statements the server plans in a fraction of
            # the time the arrays' take.
            lock, work_of = (q.LOCK_KEY, keys[0]), (q.WORK_OF_KEY, keys[0])
            new_flows = (q.FLOW_OF_NEW_KEY, (keys[0][0], *keys[0]))
        else:
            flows, names = [k[0] for k in keys], [k[1] for k in keys]
            lock, work_of = (q.LOCK_KEYS, (flows, names)), (q.WORK_OF_KEYS, (flows, names))
            new_flows = (q.FLOWS_OF_NEW_KEYS, (flows, names))
        # Their outbox rows and timers in a statement of its own: it runs once the locks are
        # held, and sees what the transactions it waited for committed. And the flows of the
        # names not found, which the starts among the jobs read first.
        rows, work, found_flows = self._send([lock, work_of, new_flows])
        for row in rows:
            self._keep(ExecutionRow(*row))
        self._know_work(work)
        for flow in found_flows:
            self._flows[flow[0]] = FlowRow(*flow)
        self._absent = set(keys) - set(self._by_key)

    def lock_execution(self, execution_id: int) -> ExecutionRow | None:
        if execution_id in self._rows:
            return self._rows[execution_id]
        lock = (q.LOCK_ID, (execution_id,))
        if not self._buffered:
            row = self._one(*lock)
            return ExecutionRow(*row) if row else None
        # With the lock, the ids of its outbox rows, read after the lock is held (a statement
        # of its own sees what committed meanwhile): while this transaction holds the lock,
        # nobody else deletes them, and `delete_outbox` answers without a round trip.
        if self.doomed is not None:
            raise self.doomed
        rows, work = self._send([lock, (q.WORK_OF_ID, (execution_id,))])
        if not rows:
            return None
        found = ExecutionRow(*rows[0])
        self._keep(found)
        self._know_work(work)
        return found

    def update_execution(
        self,
        execution_id: int,
        *,
        status: str,
        state: str,
        output: str | None,
        error: str,
        cause: str,
        stopped: float | None,
    ) -> None:
        values = (status, state, output, error, cause, stopped)
        if self._buffered:
            self._check_writable()
            q.check_text(status, state, output, error, cause)
            self._bulk().updates[execution_id] = values
            self._written.add(execution_id)
        else:
            self._write(q.UPDATE_EXECUTION, (*values, execution_id))
        row = self._rows.get(execution_id)
        if row is not None:
            self._rows[execution_id] = dataclasses.replace(
                row,
                status=status,
                state=state,
                output=output,
                error=error,
                cause=cause,
                stopped=stopped,
            )

    def list_executions(
        self,
        flow_name: str,
        *,
        after: str,
        limit: int,
        status: str | None = None,
        name_prefix: str | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
    ) -> list[ExecutionRow]:
        terms, values = filters(status, name_prefix, started_from, started_to)
        where = ["flow_name = %s", "name > %s", *terms]
        args: list[Any] = [flow_name, after, *values]
        rows = self._all(
            f"SELECT {q.EXEC_COLUMNS} FROM executions WHERE {' AND '.join(where)} "
            "ORDER BY name LIMIT %s",
            [*args, limit],
        )
        return [ExecutionRow(*r) for r in rows]

    def count_executions(self, status: str | None = None) -> int:
        if status is None:
            row = self._one("SELECT count(*) FROM executions", ())
        else:
            row = self._one("SELECT count(*) FROM executions WHERE status = %s", (status,))
        return int(row[0])

    # -- history ------------------------------------------------------------------------------
    def append_events(self, execution_id: int, events: Sequence[HistoryEvent]) -> None:
        rows = [
            (
                execution_id,
                e.event_id,
                e.schedule_event_id,
                e.type,
                e.step_name,
                e.time,
                jsontext.dumps(e.detail) if e.detail else "{}",
            )
            for e in events
        ]
        if self._buffered:
            self._check_writable()
            for row in rows:  # (its detail is JSON the store wrote: no NUL there)
                q.check_text(row[3], row[4])
            self._bulk().events.extend(rows)
            return
        # Else one multi-row INSERT (a few hundred rows each) rather than a statement an event.
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            args = [value for row in chunk for value in row]
            self._write(q.INSERT_EVENTS_HEAD + ", ".join([q.EVENT_ROW] * len(chunk)), args)

    def list_events(self, execution_id: int, after: int, limit: int) -> list[HistoryEvent]:
        rows = self._all(
            "SELECT event_id, schedule_event_id, type, step_name, time, detail FROM events "
            "WHERE execution_id = %s AND event_id > %s ORDER BY event_id LIMIT %s",
            (execution_id, after, limit),
        )
        return [HistoryEvent(r[0], r[1], r[2], r[3], r[4], decoding.detail(r[5])) for r in rows]

    def last_event_id(self, execution_id: int) -> int:
        row = self._one("SELECT max(event_id) FROM events WHERE execution_id = %s", (execution_id,))
        return int(row[0] or 0)

    # -- quarantine ---------------------------------------------------------------------------
    def quarantine(self, kind: str, execution_id: int, data: str, reason: str) -> None:
        self._write(
            "INSERT INTO quarantine (kind, execution_id, data, reason, time) "
            "VALUES (%s, %s, %s, %s, %s)",
            (kind, execution_id, data, reason, time.time()),
        )

    def drop_work(self, execution_id: int) -> None:
        self._forget_outbox(execution_id)
        self._write("DELETE FROM timers WHERE execution_id = %s", (execution_id,))
        self._write("DELETE FROM outbox WHERE execution_id = %s", (execution_id,))

    # -- timers -------------------------------------------------------------------------------
    def add_timer(self, row: TimerRow) -> None:
        values = (row.execution_id, row.timer_id, row.fire_at, row.kind)
        if self._buffered:
            self._check_writable()
            q.check_text(row.kind)
            key = (row.execution_id, row.timer_id)
            self._bulk(timer=key).timers[key] = values
        else:
            self._write(q.INSERT_TIMER, values)
        if row.execution_id in self._locked:
            self._timers.add((row.execution_id, row.timer_id))

    def delete_timer(self, execution_id: int, timer_id: int, owner: str | None = None) -> bool:
        self._check_writable()
        if owner is None and (execution_id, timer_id) in self._timers:
            if self.doomed is not None:
                raise self.doomed
            # Known to be there (its execution is locked; a lease does not matter without an
            # owner): deleted with the next round trip, checked as `delete_outbox`'s are.
            self._timers.discard((execution_id, timer_id))
            self._bulk().timers_deleted[int(execution_id), int(timer_id)] = None
            return True
        if owner is None:
            found = self._write_one(
                "DELETE FROM timers WHERE execution_id = %s AND timer_id = %s RETURNING 1",
                (execution_id, timer_id),
            )
        else:
            found = self._write_one(
                "DELETE FROM timers WHERE execution_id = %s AND timer_id = %s "
                "AND lease_owner = %s RETURNING 1",
                (execution_id, timer_id, owner),
            )
        if found is not None:
            self._timers.discard((execution_id, timer_id))  # gone: not remembered as there
        return found is not None

    def claim_due_timers(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[TimerRow]:
        self._check_writable()
        rows = self._all(q.CLAIM_TIMERS, (now, limit, owner, lease_until - now))
        return sorted((TimerRow(*r) for r in rows), key=lambda t: (t.fire_at, t.execution_id))

    def list_timers(self, execution_id: int) -> list[TimerRow]:
        rows = self._all(
            "SELECT execution_id, timer_id, fire_at, kind FROM timers WHERE execution_id = %s "
            "ORDER BY timer_id",
            (execution_id,),
        )
        return [TimerRow(*r) for r in rows]

    def next_timer_at(self) -> float | None:
        # A timer whose lease ran out (its claimer died) is due again.
        row = self._one(
            "SELECT fire_at FROM timers "
            f"WHERE lease_until IS NULL OR lease_until < {q.NOW} ORDER BY fire_at LIMIT 1",
            (),
        )
        return float(row[0]) if row else None

    # -- outbox -------------------------------------------------------------------------------
    def add_outbox(
        self,
        execution_id: int,
        payload: dict[str, Any],
        owner: str,
        lease_until: float,
        now: float | None = None,
    ) -> int:
        self._check_writable()
        outbox_id = self._new_id(self._outbox_ids, self._outbox_sequence)
        lease = lease_until - (time.time() if now is None else now)
        values = (outbox_id, execution_id, jsontext.dumps(payload), owner, lease)
        if self._buffered:
            q.check_text(owner)  # (the payload is JSON the store wrote: no NUL there)
            self._bulk().outbox.append(values)
        else:
            self._run(q.INSERT_OUTBOX, values)
        if execution_id in self._locked:
            self._outbox_rows[outbox_id] = execution_id
        return outbox_id

    def _new_id(self, ids: list[int], sequence: str) -> int:
        """A new id from ``ids``, which takes a block from ``sequence`` when it is empty.

        Taken ahead so that adding a row need not wait for its id; the store keeps what is
        left of the block for its next transactions.
        """
        if not ids:
            rows = self._all(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                (sequence, q.ID_BLOCK),
            )
            # Popped from the end: kept in descending order, the ids come out ascending.
            ids[:] = sorted((int(r[0]) for r in rows), reverse=True)
        return ids.pop()

    def delete_outbox(self, outbox_id: int) -> bool:
        self._check_writable()
        if self._outbox_rows.pop(outbox_id, None) is not None:
            if self.doomed is not None:
                raise self.doomed
            # Known to be there (its execution is locked): deleted with the next round trip,
            # which checks that it did delete one row and dooms the transaction if not.
            self._bulk().outbox_deleted.append(int(outbox_id))
            return True
        deleted = self._write_one("DELETE FROM outbox WHERE id = %s RETURNING 1", (outbox_id,))
        return deleted is not None

    def claim_outbox(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        self._check_writable()
        rows = self._all(q.CLAIM_OUTBOX, (limit, owner, lease_until - now))
        return [decoding.outbox_row(*r) for r in sorted(rows)]

    def renew_outbox(self, ids: Sequence[int], owner: str, now: float, lease_until: float) -> None:
        if not ids:
            return
        self._write(
            f"UPDATE outbox SET lease_until = {q.NOW} + %s WHERE id = ANY(%s) AND lease_owner = %s",
            (lease_until - now, list(ids), owner),
        )

    def list_outbox(self, execution_id: int) -> list[OutboxRow]:
        rows = self._all(
            "SELECT id, execution_id, payload FROM outbox WHERE execution_id = %s ORDER BY id",
            (execution_id,),
        )
        return [decoding.outbox_row(*r) for r in rows]

    def release_leases(self, owner: str | None = None) -> None:
        args: tuple[str, ...] = ()
        if owner is None:
            where = " WHERE lease_owner IS NOT NULL"
        else:
            where, args = " WHERE lease_owner = %s", (owner,)
        self._write(f"UPDATE outbox SET lease_owner = NULL, lease_until = NULL{where}", args)
        self._write(f"UPDATE timers SET lease_owner = NULL, lease_until = NULL{where}", args)
        where = where.replace("lease_owner", "claim_owner")
        self._write(f"UPDATE flow_objects SET claim_owner = NULL, claim_until = NULL{where}", args)

    # -- notifications ------------------------------------------------------------------------
    def notify(self, channel: str, payload: str) -> None:
        self._check_writable()
        if len(payload.encode()) > q.MAX_PAYLOAD:
            raise StoreError(
                f"a notification on {channel[:60]!r} of {len(payload.encode())} bytes is "
                f"longer than PostgreSQL's {q.MAX_PAYLOAD}"
            )
        self.notices.append((channel, payload))


def _flow_values(row: FlowRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.id,
        row.definition,
        row.description,
        row.type,
        row.role_arn,
        row.version,
        row.created,
        row.modified,
        row.execution_mode,
        row.environment,
    )
