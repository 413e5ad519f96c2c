"""Python's cyclic garbage collector, paused while millions of acyclic objects are built.

A close builds ~10 objects per account, a batch replay tuples, records and facts per event and
account: the collector's generation scans grow with the heap and cost a tenth (the worker's close)
to a half (the replay's records pass) of that work. Nothing built under the pause forms cycles,
so nothing is left uncollected; the previous state is restored.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
