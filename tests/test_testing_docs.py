"""docs/testing.md: its example test module passes, run as a plugin's own suite would run it.

The example runs in a pytest subprocess in a folder of its own, with no conftest: its fixtures
must come from the `relayflow` pytest plugin that installing relayflow registers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_the_page_has_an_example() -> None:
    assert BLOCKS, "docs/testing.md has no ```python block"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_the_example_passes_as_a_plugins_suite(code: str, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    tests = len(re.findall(r"^(?:async )?def test_", code, re.M))
    assert tests, "the example has no test"
    result.assert_outcomes(passed=tests)
