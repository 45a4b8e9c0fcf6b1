"""The API's actions for published versions and aliases: PublishFlowVersion ... DeleteFlowAlias.

Fields as the service's SDK models have them: versions are numbers written as text (`"2"`);
an alias's `RoutingConfigurations` arrives as JSON text, `[{"Version": "1", "Weight": 100}]`,
and is answered as a list of such objects. DescribeFlowAlias and UpdateFlowAlias answer with
the alias under `Alias`; CreateFlowAlias answers with its fields at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import optional_int, required

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]


def _version_item(doc: dict[str, Any]) -> dict[str, Any]:
    # ListFlowVersions's items are PublishFlowVersion's answer without the flow's name.
    return {key: value for key, value in doc.items() if key != "FlowName"}


async def publish_flow_version(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.publish_flow_version(required(p, "FlowName"), p.get("Description", ""))
    return info.to_api()


async def list_flow_versions(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    page = await engine.list_flow_versions(
        required(p, "FlowName"), optional_int(p, "Limit"), p.get("NextToken", "")
    )
    return {
        "FlowVersions": [_version_item(v.to_api()) for v in page.items],
        "NextToken": page.next_token,
    }


async def delete_flow_version(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    await engine.delete_flow_version(required(p, "FlowName"), required(p, "FlowVersion"))
    return {}


async def create_flow_alias(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.create_flow_alias(
        required(p, "FlowName"),
        required(p, "Name"),
        required(p, "RoutingConfigurations"),
        p.get("Description", ""),
    )
    return info.to_api()


async def describe_flow_alias(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.describe_flow_alias(required(p, "FlowName"), required(p, "Name"))
    return {"Alias": info.to_api()}


async def list_flow_aliases(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    page = await engine.list_flow_aliases(
        required(p, "FlowName"), optional_int(p, "Limit"), p.get("NextToken", "")
    )
    return {"Aliases": [a.to_api() for a in page.items], "NextToken": page.next_token}


async def update_flow_alias(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.update_flow_alias(
        required(p, "FlowName"),
        required(p, "Name"),
        p.get("RoutingConfigurations") or None,
        p.get("Description"),
    )
    return {"Alias": info.to_api()}


async def delete_flow_alias(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    await engine.delete_flow_alias(required(p, "FlowName"), required(p, "Name"))
    return {}


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "PublishFlowVersion": publish_flow_version,
    "ListFlowVersions": list_flow_versions,
    "DeleteFlowVersion": delete_flow_version,
    "CreateFlowAlias": create_flow_alias,
    "DescribeFlowAlias": describe_flow_alias,
    "ListFlowAliases": list_flow_aliases,
    "UpdateFlowAlias": update_flow_alias,
    "DeleteFlowAlias": delete_flow_alias,
}
