"""The gateway's domain: principals and scopes, API keys, webhook signatures, CI
payload translation and token-bucket arithmetic. No I/O, no framework."""
