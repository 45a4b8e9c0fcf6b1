"""The worker of the seed scenario: one handler serves the three jobs of seed-three-tasks.yaml.

relayflow run seed-three-tasks.yaml --worker fnf-demo=seed_worker:handle
relayflow worker fnf-demo --handler seed_worker:handle --config relayflow.toml
"""


def handle(body):
    """Do one job; the returned dict becomes the task's output."""
    job = body["job"]
    if job == "extract":
        return {"rows": [{"id": 1}, {"id": 2}, {"id": 3}]}
    if job == "transform":
        return {"rows": [dict(row, seen=True) for row in body["rows"]]}
    if job == "load":
        return {"count": len(body["rows"])}
    raise ValueError(f"unknown job {job!r}")
