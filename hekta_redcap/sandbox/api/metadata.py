"""Metadata (data dictionary) export and import, export field names, instruments."""
