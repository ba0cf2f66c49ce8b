"""Definitions to REDCap's data dictionary and design, and back (import)."""
