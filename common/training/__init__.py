"""Model training on the linked cohort: exact Newton-Raphson on additive shares (see protocol.py)."""
