"""Headers whose values come from environment variables (`header_env`), and keeping them secret.

Secrets never come from the flow file: the flow, its serviceParams and the history are visible
to whoever can read executions. `relayflow.toml` names the variable only; its value is read at
each request (so a rotated secret needs no restart) and is kept out of every cause this plugin
writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from relayflow_http.errors import ERROR_SECRET_MISSING, CallFailed
from relayflow_http.params import header_problem
from relayflow_http.settings import HostRule, host_rule

__all__ = ["REDACTED", "SecretHeaders", "redact"]

REDACTED = "***"
# Parts of a secret shorter than this are words like "Bearer", not worth hiding.
_MIN_PART = 8


class SecretHeaders:
    """The `header_env` table, ready to answer "which secret headers go to this host?".

    Args:
        table: `{host pattern: {header name: environment variable name}}`.
        environ: where variables are read; `os.environ` by default (tests pass their own).
    """

    def __init__(
        self,
        table: Mapping[str, Mapping[str, str]],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        rules = [(host_rule(pattern), dict(headers)) for pattern, headers in table.items()]
        # Looser patterns first, so that a more specific one overrides the same header.
        self._rules: list[tuple[HostRule, dict[str, str]]] = sorted(
            rules, key=lambda rule: rule[0].specificity
        )
        self._environ = environ if environ is not None else os.environ

    def for_host(self, host: str, port: int) -> dict[str, str]:
        """The secret headers for a request to ``host``:``port``, values read now.

        Raises:
            CallFailed: `HTTP.SecretMissing`, when a variable is unset, empty or holds a value
                no header can carry; the cause names the variable, never its value.
        """
        # By lowercase name: a later (more specific) rule replaces a header whatever its case.
        chosen: dict[str, tuple[str, str]] = {}
        for rule, names in self._rules:
            if rule.matches(host, port):
                for header, variable in names.items():
                    chosen[header.lower()] = (header, variable)
        # Only the winners are read: an unset variable that a more specific rule overrides is
        # no reason to fail.
        return {header: self._read(header, variable, host) for header, variable in chosen.values()}

    def _read(self, header: str, variable: str, host: str) -> str:
        # Surrounding whitespace is usually the newline of a file the variable was read from.
        value = self._environ.get(variable, "").strip()
        if not value:
            raise CallFailed(
                ERROR_SECRET_MISSING,
                f"header {header} for {host} comes from the environment variable {variable}, "
                "which is not set or empty",
            )
        problem = header_problem(header, value)
        if problem is not None:  # never quote the value: it is the secret
            raise CallFailed(
                ERROR_SECRET_MISSING,
                f"header {header} for {host} comes from the environment variable {variable}, "
                f"whose value {problem}",
            )
        return value


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value, and every long word of one, replaced by `***`.

    Servers echo what they received in error pages, and a token often arrives split from its
    scheme (`Bearer abc...` echoed as `abc...`), hence the words.
    """
    for secret in secrets:
        for part in sorted({secret, *secret.split()}, key=len, reverse=True):
            if part == secret or len(part) >= _MIN_PART:
                text = text.replace(part, REDACTED)
    return text
