"""The HTTP API: Serverless Workflow's RPC actions (version 2019-03-15), signed requests, roles."""

from __future__ import annotations

from relayflow.api.app import API_VERSION, ApiApp
from relayflow.api.auth import Authenticator

__all__ = ["API_VERSION", "ApiApp", "Authenticator"]
