"""PDF of instruments."""
