"""The deployer's pure logic: environments, policy, phases. No I/O, no framework."""
