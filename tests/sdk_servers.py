"""Real servers for the official SDKs' tests, over HTTP or HTTPS, and clients of both SDKs.

    with sdk_server(folder, tls=True) as server:      # a private CA made for it (tests.tls_certs)
        client = new_client(server)                    # alibabacloud-fnf20190315's Client, CA set
        client.list_flows_with_options(ListFlowsRequest(), server.runtime())
        old_call(server, ListFlowsRequest.ListFlowsRequest())   # aliyun-python-sdk-fnf

A server is `relayflow server` in ``folder`` with the three access keys of `tests.api_server`
and its queue plugin (task messages in messages.jsonl, read with `server.api`'s helpers). Each
SDK test module shares one server per protocol (a module-scoped fixture), so the suite stays
quick. At the end the server gets SIGTERM and must exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alibabacloud_fnf20190315.client import Client
from alibabacloud_tea_openapi import utils_models as open_api
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.http import protocol_type
from aliyunsdkcore.request import RpcRequest
from darabonba.runtime import RuntimeOptions

from tests.api_server import (
    KEYS,
    QUEUE_PLUGIN,
    ApiServer,
    config_text,
    start_server_scheme,
    stop_server,
)
from tests.tls_certs import make_certs

REGION = "cn-hangzhou"  # what both SDKs require; relayflow ignores it


@dataclass
class SdkServer:
    """A running server and what an SDK needs to reach it.

    Attributes:
        scheme: `http` or `https`.
        port: the port it serves on (127.0.0.1).
        ca_file: the private CA that signed its certificate (None over HTTP).
        api: the harness's view of it: its folder, its log and the queue's messages.
    """

    scheme: str
    port: int
    ca_file: str | None
    api: ApiServer

    @property
    def endpoint(self) -> str:
        """`host:port`: both SDKs take the address without the scheme."""
        return f"127.0.0.1:{self.port}"

    def runtime(self) -> RuntimeOptions:
        """The new SDK's per-call options: no automatic retries (the CA is in its `Config`)."""
        return RuntimeOptions(autoretry=False, read_timeout=30_000)


@contextmanager
def sdk_server(folder: Path, *, tls: bool, store: str | None = None) -> Iterator[SdkServer]:
    """A server with the test keys and queue, over HTTPS when ``tls``; SIGTERM must exit 0.

    ``store`` is its store's URL (a PostgreSQL database, say); by default SQLite in ``folder``.
    """
    config = config_text(keys=KEYS)
    if store is not None:
        config = config.replace('store = "sqlite:///relayflow.db"', f'store = "{store}"', 1)
        assert f'store = "{store}"' in config, "config_text's store line has changed"
    ca_file = None
    if tls:
        certs = make_certs(folder)
        ca_file = str(certs.ca_file)
        config = config.replace(
            "[server]\n",
            f'[server]\ntls_cert_file = "{certs.cert_file}"\ntls_key_file = "{certs.key_file}"\n',
            1,
        )
    (folder / "relayflow.toml").write_text(config, encoding="utf-8")
    (folder / "queue_plugin.py").write_text(QUEUE_PLUGIN, encoding="utf-8")
    process, scheme, port = start_server_scheme(folder)
    api = ApiServer(folder, port, process)
    try:
        assert scheme == ("https" if tls else "http"), f"the server serves {scheme}"
        if store is not None:
            scheme_of_store = store.split("://", 1)[0]
            assert f"engine on {scheme_of_store}://" in api.log(), "the server ignored store"
        yield SdkServer(scheme, port, ca_file, api)
    finally:
        api.http.close()
        code = stop_server(process)
    assert code == 0, f"relayflow server exited with {code} on SIGTERM:\n{api.log()}"


def new_client(server: SdkServer, role: str = "admin") -> Client:
    """The new SDK's client for ``server``, signing with the key of ``role``."""
    key_id, secret = KEYS[role]
    config = open_api.Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=server.endpoint,
        protocol=server.scheme,
        region_id=REGION,
        ca=server.ca_file,  # the private CA the HTTPS server's certificate chains to
    )
    return Client(config)


_old_clients: dict[tuple[str, str | None], AcsClient] = {}


def old_call(server: SdkServer, request: RpcRequest, role: str = "admin") -> dict[str, Any]:
    """Send one request of the old SDK to ``server``; the answer as a dict."""
    key = (role, server.ca_file)
    if key not in _old_clients:
        key_id, secret = KEYS[role]
        _old_clients[key] = AcsClient(
            key_id, secret, REGION, auto_retry=False, timeout=30, verify=server.ca_file
        )
    request.set_endpoint(server.endpoint)
    # The old SDK compares the protocol by identity (`is PT.HTTPS`): pass its constants.
    request.set_protocol_type(protocol_type.HTTPS if server.ca_file else protocol_type.HTTP)
    answer: dict[str, Any] = json.loads(_old_clients[key].do_action_with_exception(request))
    return answer
