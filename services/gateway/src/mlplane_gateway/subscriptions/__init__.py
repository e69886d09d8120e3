"""Event subscriptions for other teams: signed webhook deliveries and an SSE stream."""
