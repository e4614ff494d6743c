"""The DLaaS spawners: Kubernetes (``dlaas-kube``) and its local-process twin (``dlaas-local``)."""

from .kube import DLaaSKubeSpawner
from .local import DLaaSLocalSpawner

__all__ = ["DLaaSKubeSpawner", "DLaaSLocalSpawner"]
