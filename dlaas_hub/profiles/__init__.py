"""The experiments' profiles: the catalogue and its published schema, and the ``profiles`` commands."""
