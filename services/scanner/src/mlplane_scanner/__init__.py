"""mlplane scanner: Trivy scans, policy verdicts, SBOMs and rescans."""
