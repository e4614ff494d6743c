"""The operator's tools: the ``dlaas-hub`` command and ``check-config``."""
