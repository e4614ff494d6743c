# Shared set-up for scripts/demo and scripts/test: checks the tools, installs what is missing.
# Sourced, not run. Everything goes into the checkout (.venv*, node_modules), nothing system-wide.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "error: $*" >&2; exit 1; }

need_tools() {
  command -v python3 >/dev/null || die "python3 (3.10 or newer) is not installed"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); dlaas-hub needs 3.10 or newer"
  python3 -c 'import venv, ensurepip' 2>/dev/null \
    || die "python3 cannot create virtual environments: install the venv module (Debian: apt-get install python3-venv)"
  command -v node >/dev/null || die "node (Node.js 20 or newer) is not installed: the development IAM and configurable-http-proxy need it (Debian: apt-get install nodejs npm)"
  command -v npm >/dev/null || die "npm is not installed (Debian: apt-get install npm)"
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' \
    || die "node is $(node --version); the development IAM needs Node.js 20 or newer"
}

ensure_node_packages() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "== installing node packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

# ensure_venv DIR CONSTRAINTS EXTRAS: a virtual environment with dlaas-hub installed in editable mode.
ensure_venv() {
  local dir="$1" constraints="$2" extras="$3"
  if [ ! -x "$dir/bin/python" ]; then
    echo "== creating $dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
  fi
  echo "== installing dlaas-hub[$extras] into $dir ($constraints)"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]" -c "$constraints"
}

# ensure_rucio_venv: the development Rucio server and client in .venv-rucio, installed once per
# change of requirements/rucio.txt (a stamp file remembers which).
ensure_rucio_venv() {
  local dir=.venv-rucio stamp=.venv-rucio/.installed
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && cmp -s requirements/rucio.txt "$stamp"; then
    return
  fi
  [ -x "$dir/bin/python" ] || { echo "== creating $dir (the development Rucio server)"; python3 -m venv "$dir"; }
  echo "== installing the Rucio server into $dir (requirements/rucio.txt)"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r requirements/rucio.txt
  cp requirements/rucio.txt "$stamp"
}
