"""Signed requests' nonces shared through the store, as replicas on one database need.

In process: two `ApiApp`s, each with its own `Authenticator` (its own nonce cache, as two
replicas have), on one engine whose store says it serves several engines. A request replayed to
the other app is refused with the same `SignatureNonceUsed` as a replay to the same app. The
same with two real replicas on PostgreSQL is in tests/test_replica_api.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from relayflow.api import ApiApp, Authenticator
from relayflow.api.signature import signed_params
from relayflow.config import AccessKey
from relayflow.engine import Engine
from relayflow.store import open_store

KEY = AccessKey(id="ops", secret="ops-secret-0123456789", role="admin")
READER = AccessKey(id="look", secret="look-secret-0123456789", role="reader")
BOUND = 10.0


def make_engine(shared: bool) -> Engine:
    store = open_store("memory://")
    if shared:
        store.single_engine = False  # as a PostgreSQL store: nonces go to the store
    return Engine(store)


def app_for(engine: Engine) -> httpx.AsyncClient:
    app = ApiApp(engine, Authenticator([KEY, READER]), address=("127.0.0.1", 8765))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
    )


def signed(key: AccessKey, action: str, **params: str) -> dict[str, str]:
    return signed_params(
        key.id, key.secret, "POST", {"Action": action, "Version": "2019-03-15", **params}
    )


async def answer(client: httpx.AsyncClient, params: dict[str, str]) -> tuple[int, Any]:
    response = await client.post("/", data=params)
    doc = response.json()
    return response.status_code, doc.get("Code", "ok")


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, BOUND))


def test_a_request_replayed_to_another_replica_is_refused():
    async def scenario() -> list[tuple[int, Any]]:
        engine = make_engine(shared=True)
        await engine.start()
        try:
            async with app_for(engine) as first, app_for(engine) as second:
                request = signed(KEY, "ListFlows")
                return [
                    await answer(first, request),
                    await answer(second, request),  # the other replica: the store knows it
                    await answer(first, request),  # the same replica: its cache knows it
                    await answer(second, signed(KEY, "ListFlows")),  # a new nonce passes
                ]
        finally:
            await engine.close()

    assert run(scenario()) == [
        (200, "ok"),
        (400, "SignatureNonceUsed"),
        (400, "SignatureNonceUsed"),
        (200, "ok"),
    ]


def test_a_replay_is_refused_before_the_role_is_checked_on_every_replica():
    async def scenario() -> list[tuple[int, Any]]:
        engine = make_engine(shared=True)
        await engine.start()
        try:
            async with app_for(engine) as first, app_for(engine) as second:
                request = signed(READER, "DeleteFlow", Name="f")
                return [await answer(first, request), await answer(second, request)]
        finally:
            await engine.close()

    assert run(scenario()) == [(403, "AccessDenied"), (400, "SignatureNonceUsed")]


def test_one_key_nonce_does_not_block_another_keys():
    async def scenario() -> list[tuple[int, Any]]:
        engine = make_engine(shared=True)
        await engine.start()
        try:
            async with app_for(engine) as first, app_for(engine) as second:
                mine = signed(KEY, "ListFlows")
                nonce = mine["SignatureNonce"]
                theirs = signed_params(
                    READER.id,
                    READER.secret,
                    "POST",
                    {"Action": "ListFlows", "Version": "2019-03-15"},
                    nonce=nonce,
                )
                return [await answer(first, mine), await answer(second, theirs)]
        finally:
            await engine.close()

    assert run(scenario()) == [(200, "ok"), (200, "ok")]


def test_a_single_engine_store_keeps_nonces_in_the_process_only():
    engine = make_engine(shared=False)
    try:
        assert ApiApp(engine, Authenticator([KEY]), address=("127.0.0.1", 1)).shared_nonces is None
    finally:
        engine.store.close()
    shared = make_engine(shared=True)
    try:
        app = ApiApp(shared, Authenticator([KEY]), address=("127.0.0.1", 1))
        assert app.shared_nonces is not None
    finally:
        shared.store.close()
