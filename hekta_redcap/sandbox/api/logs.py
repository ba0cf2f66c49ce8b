"""The logging export."""
