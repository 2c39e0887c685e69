"""Run pytest and treat "no tests collected" (exit code 5) as the failure it is.

The integration tier skips every test without a controller; those tests are still
collected, so only a collection of zero tests is an error.
"""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5


def main(argv: list[str]) -> int:
    """Run pytest with argv; map exit code 5 to a clear failure."""
    code = pytest.main(argv)
    if code == NO_TESTS_COLLECTED:
        print("error: pytest collected no tests in", " ".join(argv), file=sys.stderr)
        return 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
