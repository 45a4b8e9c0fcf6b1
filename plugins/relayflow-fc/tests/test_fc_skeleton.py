from importlib.metadata import entry_points

from relayflow.fdl import load_flow


def test_entry_point_is_registered_in_the_relayflow_group():
    names = {ep.name: ep.value for ep in entry_points(group="relayflow")}
    assert names.get("fc") == "relayflow_fc"
    module = entry_points(group="relayflow")["fc"].load()
    assert ("fc", "function") in module.CLAIMS


def test_claimed_form_matches_what_the_loader_parses():
    flow = load_flow(
        "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: t\n"
        "    resourceArn: !Ref trip/bookTrain\n"
    )
    arn = flow.steps[0].resource_arn
    from relayflow_fc import CLAIMS

    assert (arn.service, arn.kind) in CLAIMS
    assert (arn.fc_service, arn.name) == ("trip", "bookTrain")
