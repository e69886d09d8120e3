"""mlplane drift: reference profiles, mergeable window summaries and drift verdicts."""
