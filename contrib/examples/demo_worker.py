"""The seed scenario's worker for `make demo`: the jobs of seed_worker, slowed down to be seen.

Each job says when it is picked up and takes a moment, so that the demo can show the task
moving from the queue to the worker and back to the engine.
"""

import sys
import time

from seed_worker import handle as do_job


def handle(body):
    """Announce the job, take a moment, then do it (seed_worker.handle)."""
    print(f"{body['job']:<9} picked up from the queue", file=sys.stderr, flush=True)
    time.sleep(0.3)
    return do_job(body)
