"""mlplane gateway: the one public door.

Auth, tenancy, CI webhooks, CloudEvents ingress, subscriptions and rate limits.
"""
