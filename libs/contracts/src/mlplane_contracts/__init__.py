"""mlplane contracts."""
