"""The scanner's domain, free of I/O: findings, policies and how a verdict is decided."""
