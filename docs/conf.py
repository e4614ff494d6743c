project = "dlaas-hub"
author = "dlaas-hub contributors"
extensions = ["myst_parser"]
myst_enable_extensions = ["colon_fence", "deflist"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
# Pages of their own (no section below them) get no primary sidebar: pydata-sphinx-theme would show
# an empty "Section Navigation" there.
html_sidebars = {"index": [], "scientists": [], "experiments": [], "security": []}


# -- the configuration reference, generated from the traits' own help --------------------------

def _literal_blocks(text: str) -> str:
    """RST ``Example::`` blocks in traitlets help, as fenced code for MyST."""
    import re

    lines, out, in_block = text.splitlines(), [], False
    for line in lines:
        if in_block and line.strip() and not line.startswith("    "):
            while out[-1] == "":
                out.pop()
            out += ["```", ""]
            in_block = False
        if line.rstrip().endswith("::") and not in_block:
            out += [line.rstrip()[:-1], "", "```python"]
            in_block = True
            continue
        if in_block and not line.strip() and out[-1] == "```python":
            continue
        out.append(line[4:] if in_block else line)
    if in_block:
        out.append("```")
    return re.sub(r":(?:attr|class|meth|func):`~?([^`]+)`", r"`\1`", "\n".join(out))


def _default(trait) -> str:
    try:
        value = trait.default()
    except Exception:
        value = trait.default_value
    if callable(value) or value is None or value == "":
        return ""
    return f" Default: `{value!r}`."


def write_config_reference(app=None):
    import inspect
    from pathlib import Path

    from dlaas_hub.auth.authenticator import DLaaSAuthenticator
    from dlaas_hub.spawners import DLaaSKubeSpawner, DLaaSLocalSpawner

    parts = ["# Configuration reference", "",
             "Every setting dlaas-hub adds, generated from the classes' own documentation when these docs are "
             "built. Settings inherited from oauthenticator's `GenericOAuthenticator`, kubespawner's `KubeSpawner` "
             "and JupyterHub's `LocalProcessSpawner` work as their own documentation says.", ""]
    for cls in (DLaaSAuthenticator, DLaaSKubeSpawner, DLaaSLocalSpawner):
        parts += [f"## {cls.__name__}", "", _literal_blocks(inspect.cleandoc(cls.__doc__ or "")), ""]
        own = {}
        for base in reversed(cls.__mro__):
            if base.__module__.startswith("dlaas_hub") and hasattr(base, "class_own_traits"):
                own.update(base.class_own_traits(config=True))
        for name in sorted(own):
            trait = own[name]
            help_text = _literal_blocks(inspect.cleandoc(trait.help)) if trait.help else "(undocumented)"
            parts += [f"### `{cls.__name__}.{name}`", "", f"*{type(trait).__name__}*.{_default(trait)}", "",
                      help_text, ""]
    target = Path(__file__).parent / "reference" / "config.md"
    text = "\n".join(parts)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", write_config_reference)
