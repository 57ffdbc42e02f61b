"""Ray tests run only inside a network namespace of their own (../shared/NOTES.md: outside
one, Ray binds to the machine's interface address). `make test` runs this folder through
scripts/in_netns.sh; anywhere else these tests skip, and with COCKPIT_REQUIRE_RAY=1 (CI)
they fail instead, so they never drop out of CI unnoticed."""

import os
from pathlib import Path

import pytest

REQUIRED = os.environ.get("COCKPIT_REQUIRE_RAY") == "1"


def interfaces() -> list[str]:
    """This network namespace's interfaces (/proc/net/dev: /sys/class/net shows the
    namespace sysfs was mounted in)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def why_not() -> str:
    """"" when Ray may run here, else why not."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'cockpit[ray]'; make install does)"
    if interfaces() != ["lo"]:
        return (f"not in a network namespace of its own (interfaces {', '.join(interfaces())}): "
                "run through scripts/in_netns.sh, as make test does")
    return ""


def pytest_collection_modifyitems(config, items):
    reason = why_not()
    if not reason:
        return
    if REQUIRED:
        raise pytest.UsageError(f"COCKPIT_REQUIRE_RAY=1 but {reason}")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))
