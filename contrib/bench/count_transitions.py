"""Run the engine's throughput workload N times ten transitions, for counting instructions.

Wall-clock figures on a shared machine swing by a fifth; instruction counts do not. Run it under
callgrind for two sizes and divide the difference by the extra transitions:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python contrib/bench/count_transitions.py 1
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python contrib/bench/count_transitions.py 600

(the two "Collected" totals differ by the cost of 5,990 transitions; see docs/benchmarks.md).

With a PostgreSQL server's URL as the second argument, the workload runs on a fresh database of
that server instead of the embedded store (callgrind counts the engine's process only, not the
server's):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python contrib/bench/count_transitions.py 600 postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_engine import Stores, bench_throughput

if __name__ == "__main__":
    executions = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    stores = Stores(sys.argv[2], "full") if len(sys.argv) > 2 else "normal"
    print(asyncio.run(bench_throughput(stores, executions, 10)))
