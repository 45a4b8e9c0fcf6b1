"""One way to load a user's `module:function`: handlers, workers and plugins name code so.

`import_object` resolves the text with the standard library's `pkgutil.resolve_name` and turns
every way it can fail into one `ImportTargetError` whose message is one sentence that names the
text and what is wrong::

    from relayflow.importing import ImportTargetError, import_callable

    try:
        handle = import_callable("jobs:handle")
    except ImportTargetError as exc:
        print(exc)  # cannot import module 'jobs': no module named 'jobs' in /srv/app or ...

The four answers a user can get:

- the text is not `module:attribute` at all;
- the module is not found (nor, for `pkg.mod`, one of its packages);
- the module was found but importing it failed: the message names the exception and the
  module's own line that raised it (`jobs.py line 3`), not importlib's frames;
- the module lacks the attribute (`module:Class.method` is walked part by part), or, for
  `import_callable`, the attribute cannot be called.

The current directory goes to the front of the Python path first (once), so modules next to
where the command runs are found, the way pytest finds a conftest.py.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from relayflow.errors import RelayflowError

__all__ = ["ImportTargetError", "import_callable", "import_object"]


class ImportTargetError(RelayflowError):
    """A `module:attribute` that cannot be loaded; the message says which and why.

    Attributes:
        spec: the text as given.
        message: one sentence for a person (also `str(error)`).
    """

    def __init__(self, spec: str, message: str) -> None:
        super().__init__(message)
        self.spec = spec
        self.message = message


def import_object(spec: str, *, label: str | None = None, search_cwd: bool = True) -> Any:
    """The object that ``spec`` (`module:attribute`, the attribute maybe dotted) names.

    Args:
        spec: such as `jobs:handle` or `pkg.jobs:Jobs.run`.
        label: how the message calls the text when it is malformed, such as `--handler`.
        search_cwd: put the current directory at the front of the Python path first.

    Raises:
        ImportTargetError: the text is malformed, the module is not found or fails to import,
            or it lacks the attribute.
    """
    module_name, colon, attribute = spec.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    if not colon or not module_name or not attribute:
        raise ImportTargetError(spec, _malformed(spec, label))
    cwd = os.getcwd()
    if search_cwd and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if module_name not in sys.modules:
        importlib.invalidate_caches()  # a module written after start is found too
    try:
        return pkgutil.resolve_name(f"{module_name}:{attribute}")
    except ValueError:  # the words are not identifiers
        raise ImportTargetError(spec, _malformed(spec, label)) from None
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            where = f"in {cwd} or on the Python path" if search_cwd else "on the Python path"
            raise ImportTargetError(
                spec, f"cannot import module '{module_name}': no module named '{exc.name}' {where}"
            ) from None
        raise ImportTargetError(spec, _failed_import(module_name, exc)) from exc
    except AttributeError as exc:
        if module_name not in sys.modules:  # raised while the module was being imported
            raise ImportTargetError(spec, _failed_import(module_name, exc)) from exc
        raise ImportTargetError(spec, _missing(module_name, attribute)) from None
    except (Exception, SystemExit) as exc:  # SyntaxError, sys.exit() at import time, ...
        raise ImportTargetError(spec, _failed_import(module_name, exc)) from exc


def import_callable(
    spec: str, *, label: str | None = None, search_cwd: bool = True
) -> Callable[..., Any]:
    """Like `import_object`, and the object must be callable.

    Raises:
        ImportTargetError: as `import_object`, or the object cannot be called.
    """
    found = import_object(spec, label=label, search_cwd=search_cwd)
    if not callable(found):
        raise ImportTargetError(spec, f"'{spec}' is {_kind(found)}, not a function")
    return found  # type: ignore[no-any-return]


def _malformed(spec: str, label: str | None) -> str:
    if label:
        return f"{label} must be MODULE:FUNCTION, such as jobs:handle; got {spec!r}"
    return f"{spec!r} is not MODULE:FUNCTION, such as jobs:handle"


def _missing(module_name: str, attribute: str) -> str:
    """Which part of a dotted attribute is missing, walked again to say it exactly."""
    found: Any = sys.modules[module_name]
    walked: list[str] = []
    for part in attribute.split("."):
        if not hasattr(found, part):
            break
        found = getattr(found, part)
        walked.append(part)
    if not walked:
        return f"module '{module_name}' has no attribute '{attribute}'"
    missing = attribute.split(".")[len(walked)]
    return f"'{module_name}:{'.'.join(walked)}' has no attribute '{missing}'"


def _failed_import(module_name: str, exc: BaseException) -> str:
    where = _where(exc)
    at = f" at {where}" if where else ""
    text = (str(exc).splitlines() or [""])[0][:200]
    if isinstance(exc, SyntaxError) and exc.msg:
        text = exc.msg
    said = f": {text}" if text else ""
    return f"cannot import module '{module_name}': {type(exc).__name__}{at}{said}"


def _where(exc: BaseException) -> str:
    """`file line N` of the user's code that raised ``exc`` while importing, or ""."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{_short(exc.filename)} line {exc.lineno}"
    tb: TracebackType | None = exc.__traceback__
    for frame in traceback.extract_tb(tb):
        name = frame.filename
        if name.startswith("<frozen") or name in (__file__, pkgutil.__file__, importlib.__file__):
            continue
        return f"{_short(name)} line {frame.lineno}"
    return ""


def _short(filename: str) -> str:
    """A path relative to the current directory when it is under it."""
    try:
        return str(Path(filename).relative_to(os.getcwd()))
    except ValueError:
        return filename


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"
