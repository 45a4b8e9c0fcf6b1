"""relayflow-fc: Function Compute style handlers as a relayflow integration.

This distribution is a skeleton for now: it claims the `acs:fc` resourceArn form (and funcraft's
`!Ref service/function`) so that the plugin layout, packaging and entry point are exercised.
The integration itself arrives with the plugin machinery.
"""

from __future__ import annotations

#: The resourceArn service and kind this plugin will serve.
CLAIMS = (("fc", "function"),)
