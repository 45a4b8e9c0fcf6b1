"""relayflow-prometheus: under construction (issue 16)."""
