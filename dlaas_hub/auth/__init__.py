"""Signing in: DLaaSAuthenticator, its login and callback handlers, id_token checks, discovery,
account names and subject binding, signing out at the provider, and log scrubbing."""
