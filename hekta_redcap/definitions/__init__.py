"""The instrument and study definitions (the single source of truth) and their scoring."""
