"""lancelot: privacy-preserving record linkage, exploration and training for vertically partitioned data.

The common library. Crypto (``lancelot.crypto``), the protocols (``linkage``, ``explore``,
``training``) and the protocol runtime (``lancelot.runtime``) never import vantage6. Inside an
algorithm container only ``lancelot.v6`` does (``lancelot.v6.adapter`` for vantage6 4.15,
``lancelot.v6.v5`` for 5.x), so each adapter stays thin; on the researcher's side
``lancelot.client`` uses vantage6's client for ``Study.login``.
"""

__version__ = "0.1.0"

_LAZY = {"Study": "lancelot.study", "LinkageResult": "lancelot.results", "Exploration": "lancelot.results",
         "LogisticModel": "lancelot.results", "CoxModel": "lancelot.results", "Model": "lancelot.results"}


def __getattr__(name: str):
    """``from lancelot import Study`` without importing the researcher API into every algorithm process."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lancelot' has no attribute {name!r}")
