"""The ways events come in from outside: CI webhooks (GitHub, GitLab, custom), CloudEvents
over HTTP, the teams' webhook secrets, and the deliveries received."""
