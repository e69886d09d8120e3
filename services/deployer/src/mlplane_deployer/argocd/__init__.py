"""The deployer's Argo CD adapter: Applications through the Kubernetes API.

- `client.ArgoCdApplications.ensure_application(manifest)`: server-side apply of one
  Application per model and environment, retried on 409/429/5xx;
- `watch.ApplicationWatch.events()`: every Application change (list + watch, resume,
  relist on 410);
- `phase_mapping.phase_of(status, revision)`: what a status says about the phase (pure);
- `follow.PhaseFollower` and `follow.follow_phases(...)`: phase changes of tracked
  deployments, with a deadline to be healthy;
- `connection.kube_api_client(...)`: the `ApiClient` the composition root owns;
- `sync.ArgoCdSync`: the hosted deployer's `ClusterSync` (ensure after each push) and
  its follower worker, recording each phase change through the service.
"""
