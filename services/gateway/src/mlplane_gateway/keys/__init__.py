"""API keys: the admin routes, their use cases and store, the initial admin key."""
