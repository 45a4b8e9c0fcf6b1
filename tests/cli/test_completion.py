"""Shell completion is click's: the `_RELAYFLOW_COMPLETE` variable, in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("relayflow"))


def complete(shell: str, words: str = "", cword: int = 0) -> str:
    env = {
        **os.environ,
        "_RELAYFLOW_COMPLETE": shell,
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    done = subprocess.run([EXE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash_source", "complete -o nosort -F"),
        ("zsh_source", "#compdef relayflow"),
        ("fish_source", "complete"),
    ],
)
def test_each_shell_gets_a_script(shell, marker):
    assert marker in complete(shell)


def test_bash_completes_command_names():
    names = {line.split(",", 1)[1] for line in complete("bash_complete", "relayflow ", 1).split()}
    assert {
        "validate",
        "outline",
        "run",
        "server",
        "flows",
        "executions",
        "tasks",
        "config",
    } <= names
    assert complete("bash_complete", "relayflow fl", 1).split() == ["plain,flows"]
    subcommands = complete("bash_complete", "relayflow executions ", 2).split()
    assert [s.split(",", 1)[1] for s in subcommands] == [
        "describe",
        "history",
        "list",
        "purge",
        "redrive",
        "start",
        "stop",
        "tree",
        "waiting",
    ]
