"""The API's actions for the service itself: DescribeRegions, DescribeMapRun, UpdateMapRun.

DescribeRegions answers with the one region a server is: `[server] region_id`, `region_name`
and `region_endpoint`, which `relayflow.server` hands over with `set_region` when it starts (an
engine served without it, as in tests, is the region `local` at `127.0.0.1:8765`).

DescribeMapRun and UpdateMapRun belong with the service's distributed Map steps, whose items
run as a "map run" of child executions. FDL has no such step, so no execution of relayflow
ever has a map run: both actions check the flow and the execution they name, as the service
would, and then answer that the map run does not exist (`MapRunNotExists`, 404, `Map run
'<name>' does not exist in execution '<execution>' of flow '<flow>': ...`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from relayflow.api.params import optional_int, required
from relayflow.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS", "DEFAULT_REGION", "MAP_RUN_NOT_EXISTS", "Region", "region_of", "set_region"]

#: The code DescribeMapRun and UpdateMapRun answer with (HTTP 404).
MAP_RUN_NOT_EXISTS: Final = "MapRunNotExists"
# Longest names the map-run actions accept (the service's names are at most 128 characters).
_MAX_NAME = 128


@dataclass(frozen=True)
class Region:
    """What DescribeRegions says about the server.

    Attributes:
        region_id: `RegionId`, such as `local` or `cn-hangzhou`.
        endpoint: `RegionEndpoint`: where clients reach the API, as `host:port` (what the
            SDKs take as an endpoint) or a URL.
        local_name: `LocalName`, a name for people; the region id when empty.
    """

    region_id: str
    endpoint: str
    local_name: str = ""

    def to_api(self) -> dict[str, str]:
        """The region as one entry of DescribeRegions' `Regions.Region`."""
        return {
            "RegionId": self.region_id,
            "RegionEndpoint": self.endpoint,
            "LocalName": self.local_name or self.region_id,
        }


#: The region of an engine served without `set_region` (the server's default address).
DEFAULT_REGION = Region("local", "127.0.0.1:8765")

# Per engine, not per process: tests serve several engines in one process.
_REGIONS: weakref.WeakKeyDictionary[Engine, Region] = weakref.WeakKeyDictionary()


def set_region(engine: Engine, region: Region) -> None:
    """Make DescribeRegions answer ``region`` for requests to ``engine``."""
    _REGIONS[engine] = region


def region_of(engine: Engine) -> Region:
    """The region DescribeRegions answers for ``engine``."""
    return _REGIONS.get(engine, DEFAULT_REGION)


async def describe_regions(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    # AcceptLanguage only chooses the language of LocalName, which is the operator's text.
    return {"Regions": {"Region": [region_of(engine).to_api()]}}


def _name(p: Mapping[str, str], name: str) -> str:
    value = required(p, name)
    if len(value) > _MAX_NAME:
        raise EngineError(
            "InvalidArgument",
            f"{name} must be at most {_MAX_NAME} characters, got {len(value)}",
            400,
        )
    return value


async def _map_run_missing(engine: Engine, p: Mapping[str, str]) -> EngineError:
    """The refusal for the map run ``p`` names, once its flow and execution are known to exist.

    Raises:
        EngineError: `MissingParameter`, or the flow's or the execution's own not-found error.
    """
    flow, execution, map_run = (
        _name(p, "FlowName"),
        _name(p, "ExecutionName"),
        _name(p, "MapRunName"),
    )
    await engine.describe_flow(flow)
    await engine.describe_execution(flow, execution)
    return EngineError.of(
        "MapRunNotExists",
        f"Map run '{map_run}' does not exist in execution '{execution}' of flow '{flow}': FDL "
        "has no distributed Map step, so no execution has map runs",
    )


async def describe_map_run(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    raise await _map_run_missing(engine, p)


async def update_map_run(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    # The settings are read first so that a malformed one is refused as it would be anywhere.
    for name in ("Concurrency", "ToleratedFailedCount"):
        value = optional_int(p, name)
        if value is not None and value < 0:
            raise EngineError("InvalidArgument", f"{name} must be 0 or more, got {value}", 400)
    percentage = p.get("ToleratedFailedPercentage", "")
    if percentage:
        try:
            share = float(percentage)
        except ValueError:
            share = -1.0
        if not 0 <= share <= 100:
            raise EngineError(
                "InvalidArgument",
                f"ToleratedFailedPercentage must be a number from 0 to 100, got {percentage!r}",
                400,
            )
    raise await _map_run_missing(engine, p)


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "DescribeRegions": describe_regions,
    "DescribeMapRun": describe_map_run,
    "UpdateMapRun": update_map_run,
}
