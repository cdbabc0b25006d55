"""The one wait of the tests: for a condition, polled, within a bound.
Shared by conftest.py and the guest tier's checks.py, which runs in the
guest without pytest's conftest (tests/guest/tier.py copies this file)."""

import time


def wait_for(predicate, timeout=10.0, interval=0.02):
    """True once predicate() is, polled every interval seconds; after
    timeout seconds, what it says then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
