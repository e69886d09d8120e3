"""Who is calling: API keys, the bootstrap key and OIDC tokens, the verified-key cache,
rate limits and failed-credential throttling, principals and the `Guard` routes use."""
