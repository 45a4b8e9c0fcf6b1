"""The worker side of relayflow-prometheus: under construction (issue 16)."""
