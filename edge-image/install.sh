#!/usr/bin/env bash
# Installs edgewarden on a gateway without containers: the app with production
# dependencies into /opt/edgewarden, a system user, /etc/edgewarden/env and the systemd
# unit. Idempotent: re-running upgrades the app in place and keeps config and data.
#
#   sudo edge-image/install.sh                        # from this checked-out tree
#   sudo edge-image/install.sh --from edgewarden-0.1.0.tgz   # from a release tarball (npm pack)
#   edge-image/install.sh --prefix /tmp/ew --no-systemd      # app only, no root needed
#   edge-image/install.sh --dry-run                          # print what would be done
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: install.sh [options]
  --from PATH      checked-out tree (default: the tree holding this script) or release tarball (.tgz)
  --prefix DIR     where the app goes (default /opt/edgewarden)
  --etc-dir DIR    where the env file goes (default /etc/edgewarden)
  --unit-dir DIR   where the systemd unit goes (default /etc/systemd/system)
  --user NAME      service user (default edgewarden)
  --node PATH      node binary for the unit (default: node on PATH)
  --cpu ARCH       install production dependencies for another CPU (e.g. arm64; cross-install)
  --no-systemd     install the app only: no user, env file, unit or systemctl
  --dry-run        print the steps without doing them
USAGE
}

die() { echo "install.sh: $*" >&2; exit 2; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FROM=$(cd "$SCRIPT_DIR/.." && pwd)
PREFIX=/opt/edgewarden
ETC_DIR=/etc/edgewarden
UNIT_DIR=/etc/systemd/system
SVC_USER=edgewarden
NODE_BIN=$(command -v node || true)
CPU=
SYSTEMD=1
DRY_RUN=0

while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM=${2:?--from needs a path}; shift 2 ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --etc-dir) ETC_DIR=${2:?--etc-dir needs a directory}; shift 2 ;;
    --unit-dir) UNIT_DIR=${2:?--unit-dir needs a directory}; shift 2 ;;
    --user) SVC_USER=${2:?--user needs a name}; shift 2 ;;
    --node) NODE_BIN=${2:?--node needs a path}; shift 2 ;;
    --cpu) CPU=${2:?--cpu needs an architecture}; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# Prints the command in a dry run, runs it otherwise.
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
say() { echo "install.sh: $*"; }

case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
PREFIX=${PREFIX%/}
[ -n "$NODE_BIN" ] || die "node not found on PATH (Node.js 20 or newer is needed; or pass --node)"
command -v npm >/dev/null || die "npm not found on PATH"
NODE_MAJOR=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ -z "$CPU" ] && [ "$NODE_MAJOR" -lt 20 ]; then die "$NODE_BIN is Node.js $NODE_MAJOR; edgewarden needs 20 or newer"; fi
if [ "$SYSTEMD" = 1 ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "installing the user and the systemd unit needs root (or pass --no-systemd)"
fi

WORK=$(mktemp -d)
STAGE="$PREFIX.new.$$"   # beside the prefix, so the final swap is a rename
cleanup() { rm -rf "$WORK" "$STAGE"; }
trap cleanup EXIT

# ---- source: a tree or an npm-pack tarball (package/...) ----
if [ -f "$FROM" ]; then
  say "unpacking $FROM"
  tar -xzf "$FROM" -C "$WORK"
  SRC="$WORK/package"
else
  SRC=$(cd "$FROM" && pwd)
fi
[ -f "$SRC/package.json" ] || die "$FROM holds no package.json"

say "staging $PREFIX from $SRC"
run mkdir -p "$STAGE"
for f in package.json package-lock.json npm-shrinkwrap.json README.md LICENSE bin policies edge-image; do
  if [ -e "$SRC/$f" ]; then run cp -R "$SRC/$f" "$STAGE/"; fi
done

# ---- dist/: built from src/ when the tree has it (never a stale dist), else shipped ----
if [ -d "$SRC/src" ]; then
  if [ -x "$SRC/node_modules/.bin/tsc" ]; then
    say "compiling src/ with the tree's TypeScript"
    run "$SRC/node_modules/.bin/tsc" -p "$SRC/tsconfig.build.json" --outDir "$STAGE/dist"
  else
    say "compiling src/ (npm ci with dev dependencies in a scratch copy)"
    run mkdir -p "$WORK/build"
    for f in package.json package-lock.json tsconfig.json tsconfig.build.json src; do run cp -R "$SRC/$f" "$WORK/build/"; done
    run npm --prefix "$WORK/build" ci --no-audit --no-fund --prefer-offline
    run npm --prefix "$WORK/build" run build
    run cp -R "$WORK/build/dist" "$STAGE/dist"
  fi
elif [ -f "$SRC/dist/cli/main.js" ]; then
  run cp -R "$SRC/dist" "$STAGE/dist"
else
  die "$FROM has neither src/ nor a built dist/"
fi

# ---- production dependencies ----
# --prefer-offline: a warm npm cache (upgrades, CI) is used without revalidating each package
NPM_FLAGS=(--omit=dev --no-audit --no-fund --prefer-offline)
# Another CPU: take the prebuilt native modules for it and run no install scripts (they
# would build binaries for this machine that shadow the prebuilds).
if [ -n "$CPU" ]; then NPM_FLAGS+=(--os=linux "--cpu=$CPU" --ignore-scripts); fi
if [ -f "$SRC/package-lock.json" ] || [ -f "$SRC/npm-shrinkwrap.json" ]; then
  say "installing production dependencies (npm ci ${NPM_FLAGS[*]})"
  run npm --prefix "$STAGE" ci "${NPM_FLAGS[@]}"
else
  say "installing production dependencies (npm install ${NPM_FLAGS[*]}; the tarball has no lockfile)"
  run npm --prefix "$STAGE" install --no-package-lock "${NPM_FLAGS[@]}"
fi
if [ "$DRY_RUN" = 0 ] && [ ! -f "$STAGE/dist/cli/main.js" ]; then die "staged tree has no dist/cli/main.js"; fi

# ---- swap the new tree in (the old one is removed only after the rename) ----
if [ -e "$PREFIX" ]; then
  run mv "$PREFIX" "$PREFIX.old.$$"
  run mv "$STAGE" "$PREFIX"
  run rm -rf "$PREFIX.old.$$"
else
  run mkdir -p "$(dirname "$PREFIX")"
  run mv "$STAGE" "$PREFIX"
fi
say "installed $PREFIX"

[ "$SYSTEMD" = 1 ] || { say "skipping user, env file and systemd unit (--no-systemd)"; exit 0; }

# ---- user, env file, unit ----
if ! id -u "$SVC_USER" >/dev/null 2>&1; then
  run useradd --system --user-group --home-dir /var/lib/edgewarden --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
fi
run install -d -m 0750 -o root -g "$SVC_USER" "$ETC_DIR"
if [ -e "$ETC_DIR/env" ]; then
  say "keeping $ETC_DIR/env"
elif [ "$DRY_RUN" = 1 ]; then
  printf '+ write %s (template)\n' "$ETC_DIR/env"
else
  # secrets go here (env:NAME references), so the file is not world-readable
  install -m 0640 -o root -g "$SVC_USER" /dev/null "$ETC_DIR/env"
  cat >"$ETC_DIR/env" <<'ENV'
# edgewarden configuration: EDGEWARDEN_<PATH>=value for any config key (see
# edge-image/README.md). Changes take effect on `systemctl restart edgewarden`.
EDGEWARDEN_GATEWAY_ID=gw-01
EDGEWARDEN_GATEWAY_FLEET=default
#EDGEWARDEN_AUTH_JWT_JWKSURL=https://idp.example.com/.well-known/jwks.json
#EDGEWARDEN_UPSTREAM_URL=mqtts://cloud.example.com:8883
#EDGEWARDEN_UPSTREAM_PASSWORD=env:UPSTREAM_PASSWORD
#UPSTREAM_PASSWORD=
ENV
fi
run mkdir -p "$UNIT_DIR"
UNIT="$UNIT_DIR/edgewarden.service"
if [ "$DRY_RUN" = 1 ]; then
  printf '+ write %s (ExecStart=%s %s/bin/edgewarden.js start)\n' "$UNIT" "$NODE_BIN" "$PREFIX"
else
  sed -e "s#/opt/edgewarden#$PREFIX#g" -e "s#/usr/bin/node #$NODE_BIN #" \
      -e "s#^User=edgewarden\$#User=$SVC_USER#" -e "s#^Group=edgewarden\$#Group=$SVC_USER#" \
      -e "s#^EnvironmentFile=/etc/edgewarden/env\$#EnvironmentFile=$ETC_DIR/env#" \
      "$SCRIPT_DIR/systemd/edgewarden.service" >"$UNIT.tmp"
  mv "$UNIT.tmp" "$UNIT"
fi
# systemctl only for the system's own unit directory (a --unit-dir elsewhere is a staging
# or test install that systemd must not be told about)
if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  run systemctl daemon-reload
  run systemctl enable edgewarden.service
  # an upgrade restarts a running gateway; a first install leaves the start to the operator
  if systemctl is-active --quiet edgewarden.service; then run systemctl restart edgewarden.service; fi
  say "start it with: systemctl start edgewarden && journalctl -fu edgewarden"
else
  say "wrote $UNIT (systemd not told: not the system unit dir, or systemd is not running)"
fi
