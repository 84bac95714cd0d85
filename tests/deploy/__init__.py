"""Checks of the deployment files (Dockerfile, Kubernetes manifests, .env.example) made
offline: no Docker engine and no cluster, only the files, the config code and the wheel."""
