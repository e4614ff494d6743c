"""The command JupyterLab's terminals run: a login shell that keeps the server's ``PATH``.

Spawned by a hub, Jupyter Server starts each terminal as a login shell (``$SHELL -l``), so that
``/etc/profile`` and ``~/.profile`` set the user's environment up. Debian's and Ubuntu's
``/etc/profile`` assign ``PATH`` outright, dropping the environment the server runs in: ``python``,
``rucio`` and ``datalake`` from the image's environment are "command not found". This command still
runs the login shell (``/etc/profile.d`` scripts, such as an image's ROOT or conda set-up, and the
user's ``~/.profile`` keep working), then puts the server's ``PATH`` back in front, keeping the
directories the login added after it, and hands over to an interactive shell (``~/.bashrc`` runs).
"""

from __future__ import annotations

import json

# POSIX sh only: the image's /bin/sh may be dash or busybox. `set -f` keeps entries with glob
# characters as they are; the server's PATH travels in a variable, never spliced into the script.
_AFTER_LOGIN = (
    'set -f; p="$DLAAS_SERVER_PATH"; IFS=:; '
    'for d in $PATH; do case ":$p:" in *":$d:"*) ;; *) p="$p:$d" ;; esac; done; '
    'unset IFS DLAAS_SERVER_PATH; set +f; PATH="$p"; export PATH; '
    'exec "${SHELL:-/bin/sh}" -i'
)
SCRIPT = f"""DLAAS_SERVER_PATH="$PATH" exec "${{SHELL:-/bin/sh}}" -l -c '{_AFTER_LOGIN}'"""


def shell_command() -> list[str]:
    return ["/bin/sh", "-c", SCRIPT]


def server_arg() -> str:
    """The single-user server's command-line option that makes its terminals run :func:`shell_command`."""
    return "--ServerApp.terminado_settings=" + json.dumps({"shell_command": shell_command()})
