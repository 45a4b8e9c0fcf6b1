"""The worker side of relayflow-otel: under construction (issue 16)."""
