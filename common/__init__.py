"""lancelot: privacy-preserving record linkage, exploration and training for vertically partitioned data.

The common library. Crypto (``lancelot.crypto``), protocols and the protocol runtime
(``lancelot.runtime``) never import vantage6; only ``lancelot.v6`` does, so a vantage6 5.x
adapter stays thin.
"""

__version__ = "0.1.0"
