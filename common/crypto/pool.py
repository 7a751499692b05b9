"""Worker processes for the bulk cryptography (encryptions, blinding, multi-exponentiations).

Workers are forked from the calling process where the platform allows it, so they inherit the keys,
fixed-base tables and ciphertexts already built there instead of receiving them by pickle and
rebuilding them. The default start method is not always ``fork``: inside the in-process network's
forkserver children, and on Python >= 3.14, it is ``forkserver``, which made every pool rebuild its
tables (the key owner's encryptions ran about a third slower).
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def process_pool(workers: int, initializer: Any = None, initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes forked from this one (when ``fork`` exists)."""
    context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
