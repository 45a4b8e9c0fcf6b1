"""relayflow-otel: under construction (issue 16)."""
