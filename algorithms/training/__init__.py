"""lancelot_training: models on the linked cohort (not built yet)."""
