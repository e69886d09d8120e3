"""mlplane sdk."""
