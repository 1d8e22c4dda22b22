"""Arrow's memory pool for the processes that run the night: the system allocator (glibc malloc).

Arrow's default on Linux is jemalloc, which hands freed pages back to the kernel soon and faults
them in again on the next large allocation. The night allocates and frees frames of millions of
rows step after step, and the system allocator spends less time in page faults for a little more
peak memory (bench/README.md, "Design notes"). ``ARROW_DEFAULT_MEMORY_POOL`` still wins when it is
set, so an operator can choose.
"""

from __future__ import annotations

import os

import pyarrow as pa


def use_system_allocator() -> None:
    """Make the system allocator Arrow's default pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` chose one."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
