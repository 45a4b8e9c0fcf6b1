"""`relayflow console`: sign in to the web console without typing a secret into the browser.

`relayflow console token` mints a short-lived token from the `[client]` access key, on this
machine (it never sends the secret anywhere): the console's sign-in page takes it in place of
the key id and secret, once, within its minutes (`relayflow.console.session`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import click

from relayflow.cli._common import CONTEXT, Invalid, config_option, echo_json
from relayflow.cli._remote import CLIENT_CONFIG_HELP, client_settings

__all__ = ["console", "register"]

#: The longest a token may live (the server refuses longer ones); kept equal to
#: `relayflow.console.session.MAX_TOKEN_MINUTES`, which the tests check.
MAX_MINUTES = 60


@click.group(context_settings=CONTEXT)
def console() -> None:
    """The web console that `relayflow server` serves at /console/.

    Open http://127.0.0.1:8765/console/ (the server's address) in a browser. With access keys
    configured, sign in with an access key id and secret, or with a token that this command
    prints from the [client] key, so the secret never goes through the browser:

    \b
      relayflow console token
      relayflow console token --minutes 2 --config ops.toml
    """


def console_url(endpoint: str) -> str:
    """The console's address on the server at ``endpoint`` (`[client] endpoint`)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    return f"{parts.scheme or 'http'}://{parts.netloc}/console/"


@console.command("token")
@click.option(
    "--minutes",
    type=click.IntRange(1, MAX_MINUTES),
    default=10,
    show_default=True,
    metavar="N",
    help=f"How long the token may be used to sign in (1 to {MAX_MINUTES}); the session it "
    "opens lasts [server] console_session_minutes.",
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"Token", "Url", "Expires", "AccessKeyId"}.'
)
@config_option(help=CLIENT_CONFIG_HELP)
def console_token(minutes: int, as_json: bool, config_path: str | None) -> None:
    """Print a console sign-in token made from the [client] access key.

    The token carries the access key id, when it expires and a random nonce, signed with the
    key's secret (HMAC-SHA256). Paste it into the console's sign-in page ("Sign in with a
    token") within --minutes: it signs in once, with the key's role (admin, worker, reader).
    The secret stays in relayflow.toml; the token is worth nothing after it expires.

    \b
      relayflow console token                  # good for 10 minutes
      relayflow console token --minutes 2
      relayflow console token --json | jq -r .Token

    A server without access keys needs no sign-in: open the console's address directly.
    """
    from relayflow.console.session import mint_token

    settings = client_settings(config_path)
    if not settings.access_key_id or not settings.access_key_secret:
        raise Invalid(
            "InvalidConfig",
            "[client] has no access_key_id and access_key_secret to sign a token with (set "
            "them, or RELAYFLOW_CLIENT__ACCESS_KEY_ID and RELAYFLOW_CLIENT__ACCESS_KEY_SECRET); "
            f"a server without access keys needs no sign-in: open "
            f"{console_url(settings.endpoint)}",
        )
    now = time.time()
    token = mint_token(settings.access_key_id, settings.access_key_secret, minutes, now)
    stamp = datetime.fromtimestamp(int(now) + minutes * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = console_url(settings.endpoint)
    if as_json:
        echo_json(
            {"Token": token, "Url": url, "Expires": stamp, "AccessKeyId": settings.access_key_id}
        )
        return
    click.echo(token)
    click.echo(
        f"Sign in at {url} with this token before {stamp} (it works once; access key "
        f"{settings.access_key_id}).",
        err=True,
    )


def register(cli: click.Group) -> None:
    """Add `console` to the `relayflow` group."""
    cli.add_command(console)
