"""DescribeRegions (the one region a server is) and the map-run actions (always not found).

The map-run and default-region cases call the shared `api_server`; a configured region runs
on a server of its own, since `[server] region_*` are read at start.
"""

from __future__ import annotations

from pathlib import Path

from alibabacloud_fnf20190315 import models

from relayflow.api.service_actions import DEFAULT_REGION, Region, region_of, set_region
from relayflow.config import ServerConfig
from relayflow.server import _region
from relayflow.testing import make_engine
from tests.api_server import TOKEN_FLOW, ApiServer, config_text, serving


def test_describe_regions_answers_the_server_s_region_in_the_service_s_shape(
    api_server: ApiServer,
) -> None:
    doc = api_server.ok({"Action": "DescribeRegions"}, role="reader")
    assert doc == {
        "Regions": {
            "Region": [
                {
                    "RegionId": "local",
                    "RegionEndpoint": f"127.0.0.1:{api_server.port}",
                    "LocalName": "local",
                }
            ]
        }
    }
    # The current SDK's model reads it.
    body = models.DescribeRegionsResponseBody().from_map({**doc, "RequestId": "r"})
    assert [r.region_id for r in body.regions.region] == ["local"]
    assert body.regions.region[0].region_endpoint == f"127.0.0.1:{api_server.port}"


def test_a_configured_region_is_answered(tmp_path: Path) -> None:
    config = config_text(plugin=False).replace(
        "[server]\n",
        '[server]\nregion_id = "cn-relay"\nregion_name = "Relay One"\n'
        'region_endpoint = "relayflow.internal:443"\n',
    )
    with serving(tmp_path, config) as server:
        doc = server.ok({"Action": "DescribeRegions", "AcceptLanguage": "en-US"})
    assert doc["Regions"]["Region"] == [
        {
            "RegionId": "cn-relay",
            "RegionEndpoint": "relayflow.internal:443",
            "LocalName": "Relay One",
        }
    ]


def test_the_endpoint_defaults_to_the_listen_address() -> None:
    assert _region(ServerConfig(), "127.0.0.1", 9000) == Region("local", "127.0.0.1:9000")
    assert _region(ServerConfig(), "::1", 9000).endpoint == "[::1]:9000"
    everywhere = _region(ServerConfig(host="0.0.0.0"), "0.0.0.0", 9000).endpoint
    assert not everywhere.startswith("0.0.0.0") and everywhere.endswith(":9000")


def test_regions_are_per_engine() -> None:
    one, two = make_engine(), make_engine()
    set_region(one, Region("one", "one:1"))
    assert region_of(one).region_id == "one"
    assert region_of(two) == DEFAULT_REGION


def refused(server: ApiServer, params: dict[str, str]) -> tuple[int, dict[str, str]]:
    answer = server.rpc(params)
    return answer.status_code, answer.json()


def test_map_runs_never_exist(api_server: ApiServer) -> None:
    api_server.ok({"Action": "CreateFlow", "Name": "maps", "Definition": TOKEN_FLOW, "Type": "FDL"})
    api_server.ok({"Action": "StartExecution", "FlowName": "maps", "ExecutionName": "run"})
    names = {"FlowName": "maps", "ExecutionName": "run", "MapRunName": "m-1"}
    for action in ("DescribeMapRun", "UpdateMapRun"):
        status, doc = refused(api_server, {"Action": action, **names})
        assert status == 404, doc
        assert doc["Code"] == "MapRunNotExists"
        assert doc["Message"].startswith(
            "Map run 'm-1' does not exist in execution 'run' of flow 'maps': "
        )
        assert "no distributed Map step" in doc["Message"]


def test_map_run_actions_check_the_flow_and_the_execution_first(api_server: ApiServer) -> None:
    status, doc = refused(
        api_server,
        {
            "Action": "DescribeMapRun",
            "FlowName": "no-flow",
            "ExecutionName": "e",
            "MapRunName": "m",
        },
    )
    assert (status, doc["Code"]) == (404, "FlowNotExists"), doc
    api_server.ok(
        {"Action": "CreateFlow", "Name": "maps-2", "Definition": TOKEN_FLOW, "Type": "FDL"}
    )
    status, doc = refused(
        api_server,
        {"Action": "UpdateMapRun", "FlowName": "maps-2", "ExecutionName": "e", "MapRunName": "m"},
    )
    assert (status, doc["Code"]) == (404, "ExecutionNotExists"), doc


def test_map_run_parameters_are_checked(api_server: ApiServer) -> None:
    status, doc = refused(api_server, {"Action": "DescribeMapRun", "FlowName": "f"})
    assert (status, doc["Code"]) == (400, "MissingParameter"), doc
    assert "ExecutionName" in doc["Message"]
    names = {"FlowName": "f", "ExecutionName": "e", "MapRunName": "m"}
    for name, value in (
        ("Concurrency", "lots"),
        ("ToleratedFailedCount", "-1"),
        ("ToleratedFailedPercentage", "150"),
    ):
        status, doc = refused(api_server, {"Action": "UpdateMapRun", **names, name: value})
        assert (status, doc["Code"]) == (400, "InvalidArgument"), doc
        assert name in doc["Message"]
    status, doc = refused(
        api_server, {"Action": "DescribeMapRun", **names, "MapRunName": "m" * 129}
    )
    assert (status, doc["Code"]) == (400, "InvalidArgument"), doc
