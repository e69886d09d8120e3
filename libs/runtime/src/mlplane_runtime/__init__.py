"""mlplane runtime."""
