#!/bin/sh
# Container entrypoint: fills per-device defaults from balena's variables, then runs the
# command (tini is PID 1 and forwards signals; `exec` keeps node as its direct child).
set -eu

# A device's gateway id defaults to its balena name (or UUID), so one fleet variable set
# serves every device; an explicit EDGEWARDEN_GATEWAY_ID (device variable) wins.
if [ -z "${EDGEWARDEN_GATEWAY_ID:-}" ]; then
  for candidate in "${BALENA_DEVICE_NAME_AT_INIT:-}" "${BALENA_DEVICE_UUID:-}"; do
    if [ -n "$candidate" ]; then
      # the config accepts [A-Za-z0-9._-]{1,64}
      EDGEWARDEN_GATEWAY_ID=$(printf '%s' "$candidate" | tr -c 'A-Za-z0-9._-' '-' | cut -c1-64)
      export EDGEWARDEN_GATEWAY_ID
      break
    fi
  done
fi

data=${EDGEWARDEN_GATEWAY_DATADIR:-/data}

# fleet.publicKey is a file path; a JWK pasted into the variable is written to the data dir.
case "${EDGEWARDEN_FLEET_PUBLICKEY:-}" in
  '{'*)
    mkdir -p "$data/keys"
    printf '%s\n' "$EDGEWARDEN_FLEET_PUBLICKEY" > "$data/keys/fleet.pub.jwk.tmp"
    mv "$data/keys/fleet.pub.jwk.tmp" "$data/keys/fleet.pub.jwk"
    EDGEWARDEN_FLEET_PUBLICKEY="$data/keys/fleet.pub.jwk"
    export EDGEWARDEN_FLEET_PUBLICKEY
    ;;
esac

if [ -d "$data" ] && [ ! -w "$data" ]; then
  echo "edgewarden: data dir $data is not writable by uid $(id -u); mount a named volume there (see edge-image/README.md)" >&2
  exit 1
fi

exec "$@"
