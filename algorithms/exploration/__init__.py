"""lancelot_exploration: statistics on the linked cohort (not built yet)."""
