#!/usr/bin/env bash
# Install the system packages the Gridcase test suite needs on a fresh
# Debian 12 machine, skipping whatever is already present:
#
#   postgresql      server binaries for tests/pgserver.py (initdb, pg_ctl, postgres)
#   redis-server    a real Redis for tests/redisserver.py (the rate limits several nodes share)
#   nginx           a real nginx in front of gunicorn for tests/test_nginx.py (docs/nginx-gridcase-errors.conf)
#   chromium        /usr/bin/chromium for the Playwright browser tests
#   fonts-noto-cjk  Chinese glyphs in screenshots
#   nodejs, npm     node >= 18 for the frontend tooling
#
# Runs apt-get as root, or through sudo otherwise.  `apt-get update` runs at
# most once, and only if something has to be installed.  If another apt/dpkg
# process holds the lock, waits for it (up to 10 minutes) instead of failing.
#
# Usage: scripts/install-test-deps.sh [-n|--dry-run]
set -euo pipefail

DRY_RUN=0
case "${1:-}" in
  -n|--dry-run) DRY_RUN=1 ;;
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [-n|--dry-run]" >&2; exit 2 ;;
esac

NODE_MIN_MAJOR=18
LOCK_TIMEOUT=600   # seconds to wait for a dpkg/apt lock held by someone else

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()   # only an error if something actually needs installing
fi

log() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: error: %s\n' "$*" >&2; exit 1; }

# ---- checks (return 0 when the thing is already present) ------------------

have_postgresql() {
  local f
  for f in /usr/lib/postgresql/*/bin/initdb; do
    [[ -x $f ]] && return 0
  done
  return 1
}

have_redis() { command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]; }

have_chromium() { [[ -x /usr/bin/chromium ]]; }

have_nginx() { [[ -x /usr/sbin/nginx ]]; }

have_python_venv() { python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }

have_cjk_fonts() {
  dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'install ok installed' && return 0
  command -v fc-list >/dev/null 2>&1 && fc-list ':lang=zh' family 2>/dev/null | grep -qi 'noto.*cjk'
}

node_major() {
  local v
  v=$(node --version 2>/dev/null) || return 1
  v=${v#v}
  [[ ${v%%.*} =~ ^[0-9]+$ ]] || return 1
  echo "${v%%.*}"
}

have_node() {
  local major
  major=$(node_major) || return 1
  (( major >= NODE_MIN_MAJOR ))
}

have_npm() { command -v npm >/dev/null 2>&1 && npm --version >/dev/null 2>&1; }

# ---- work out what is missing ---------------------------------------------

pkgs=()
why=()
want() { pkgs+=("$1"); why+=("$2"); }

have_python_venv || want python3-venv "Python venv (python3 -m venv needs ensurepip)"
have_postgresql || want postgresql "PostgreSQL server (no initdb under /usr/lib/postgresql/*/bin)"
have_redis      || want redis-server "Redis server (no redis-server)"
have_chromium   || want chromium "Chromium (no /usr/bin/chromium)"
have_nginx      || want nginx "nginx (no /usr/sbin/nginx)"
have_cjk_fonts  || want fonts-noto-cjk "Noto CJK fonts (Chinese glyphs)"
if ! have_node; then
  if major=$(node_major); then
    want nodejs "Node.js (found v$major, need >= $NODE_MIN_MAJOR)"
  else
    want nodejs "Node.js (node not found)"
  fi
  have_npm || want npm "npm (not found)"
elif ! have_npm; then
  # Node is fine; NodeSource's nodejs bundles npm, Debian's needs the npm package.
  want npm "npm (not found)"
fi

if (( ${#pkgs[@]} == 0 )); then
  log "all test dependencies already present (postgresql, redis-server, nginx, chromium, fonts-noto-cjk, node $(node --version), npm $(npm --version))"
  exit 0
fi

if (( DRY_RUN )); then
  for i in "${!pkgs[@]}"; do log "would install ${pkgs[$i]}: ${why[$i]}"; done
  exit 0
fi

if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
  die "need to install ${pkgs[*]} but not root and sudo is not available"
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found (this script targets Debian 12)"

# ---- apt helpers ----------------------------------------------------------

APT_LOG=$(mktemp -t install-test-deps.XXXXXX)
trap 'rm -f "$APT_LOG"' EXIT

# Run apt-get quietly; wait for locks held by other apt/dpkg processes
# (DPkg::Lock::Timeout covers the dpkg frontend lock; the retry loop also
# covers the lists lock taken by a concurrent `apt-get update`).
apt_get() {
  local deadline=$(( SECONDS + LOCK_TIMEOUT )) announced=0
  while :; do
    if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
        apt-get -q -y -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" >"$APT_LOG" 2>&1; then
      return 0
    fi
    if grep -qiE 'could not get lock|unable to acquire the dpkg frontend lock|unable to lock' "$APT_LOG" \
        && (( SECONDS < deadline )); then
      (( announced )) || log "waiting for another apt/dpkg process to release its lock..."
      announced=1
      sleep 5
      continue
    fi
    echo "install-test-deps: apt-get $* failed:" >&2
    tail -n 40 "$APT_LOG" >&2
    return 1
  done
}

log "updating package lists (apt-get update)"
apt_get update

for i in "${!pkgs[@]}"; do
  log "installing ${pkgs[$i]}: ${why[$i]}"
  apt_get install --no-install-suggests "${pkgs[$i]}"
done

# ---- verify ---------------------------------------------------------------

fail=0
have_python_venv || { echo "install-test-deps: python3-venv still missing" >&2; fail=1; }
have_postgresql || { echo "install-test-deps: postgresql still missing initdb" >&2; fail=1; }
have_redis      || { echo "install-test-deps: redis-server still missing" >&2; fail=1; }
have_chromium   || { echo "install-test-deps: /usr/bin/chromium still missing" >&2; fail=1; }
have_nginx      || { echo "install-test-deps: /usr/sbin/nginx still missing" >&2; fail=1; }
have_cjk_fonts  || { echo "install-test-deps: fonts-noto-cjk still missing" >&2; fail=1; }
have_node       || { echo "install-test-deps: node >= $NODE_MIN_MAJOR still missing (got: $(node --version 2>&1 || true))" >&2; fail=1; }
have_npm        || { echo "install-test-deps: npm still missing" >&2; fail=1; }
(( fail == 0 )) || exit 1
log "done"
