project = "dlaas-hub"
author = "dlaas-hub contributors"
extensions = ["myst_parser"]
myst_enable_extensions = ["colon_fence", "deflist"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
