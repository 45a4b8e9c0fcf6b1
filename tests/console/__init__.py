"""Tests of the web console (relayflow.console)."""
