"""The seed scenario (three tasks) end to end on the engine."""

from __future__ import annotations

from relayflow.testing import bounded, make_engine
from tests.engine.helpers import SEED, Worker, finished


@bounded
async def test_seed_three_tasks_end_to_end():
    worker = Worker()
    async with make_engine({"acs:mns:::/queues/fnf-demo/messages": worker.queue}) as eng:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        extract = await worker.take(1)
        assert extract.step_name == "extract"
        assert extract.input == {"job": "extract", "source": "s3://x", "taskToken": extract.token}
        assert extract.service_params == {"MessageBody": extract.input, "Priority": 8}
        assert extract.timeout_seconds == 300 and extract.pattern == "waitForCallback"
        await eng.report_task_succeeded(extract.token, {"rows": [1, 2]})
        transform = await worker.take(2)
        assert transform.step_name == "transform"
        assert transform.input == {"job": "transform", "rows": [1, 2], "taskToken": transform.token}
        await eng.report_task_succeeded(transform.token, {"rows": [1, 2, 3]})
        load = await worker.take(3)
        assert load.step_name == "load" and load.input["rows"] == [1, 2, 3]
        await eng.report_task_succeeded(load.token, {"count": 3})
        info = await finished(eng, "seed", "run1")
        assert info.status == "Succeeded"
        assert info.output == {"rows": [1, 2, 3], "loaded": 3}
        assert len({extract.token, transform.token, load.token}) == 3
        assert len(worker.requests) == 3
