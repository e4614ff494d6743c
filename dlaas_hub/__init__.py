"""dlaas-hub: JupyterHub plugins for a Data Lake as a Service."""

__version__ = "0.1.0"
