import json
import os
import tempfile


def pytest_configure(config):
    # A throwaway kubeconfig, in place before kubernetes_asyncio reads KUBECONFIG at import time:
    # kubespawner builds real pod manifests in the tests but never reaches a cluster.
    directory = tempfile.mkdtemp(prefix="dlaas-kubeconfig-")
    path = os.path.join(directory, "config")
    with open(path, "w") as f:
        json.dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "test", "user": {"token": "unused"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "dlaas"}}],
        }, f)
    os.environ["KUBECONFIG"] = path
