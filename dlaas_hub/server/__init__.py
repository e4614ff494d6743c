"""What runs beside or inside a user's server: the token agent and the credential file formats."""
