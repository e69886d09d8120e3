"""Image assembly without a Docker daemon: the model layer, the image config, the manifest.

Pure or streaming pieces only; pushing them to a registry is the OCI client's
job, writing them to disk is `layout.OciLayout`'s.
"""
