"""What pushing the definitions would change (plan), and pushing it."""
