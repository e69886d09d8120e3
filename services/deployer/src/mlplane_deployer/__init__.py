"""mlplane deployer: environments, policy, rendering and GitOps commits."""
