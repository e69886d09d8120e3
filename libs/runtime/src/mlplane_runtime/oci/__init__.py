"""An OCI distribution client for registries such as Harbor, Docker Hub, CNCF distribution.

Shared: the builder pushes images with it, the scanner reads the vulnerability
database's version and images' manifests.
"""
