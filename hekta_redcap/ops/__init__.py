"""Running unattended: the daemon."""
