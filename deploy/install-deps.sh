#!/usr/bin/env bash
# Installs what Continuity needs on a Debian 12 host, idempotently:
#   iptables, nftables, iproute2, libnetfilter-queue, libpcap, sqlite, gcc and redis-server (the
#   tests build a test server and protect a real Redis), postgresql (the server binaries, Debian 12's
#   PostgreSQL 15 under /usr/lib/postgresql/15/bin: the journal tests initdb and start a throwaway
#   server of their own, so the system service Debian sets up is neither needed nor used),
#   chromium (headless, for the web dashboard's browser tests: Playwright drives /usr/bin/chromium and downloads
#   no browser of its own), python3-matplotlib (the plots of deploy/bench.sh), and a CRIU that can dump AND restore a process holding an established TCP connection on the running kernel.
# Debian 12's own criu (3.17) fails on kernels >= 6.x here, and 13's (4.1) cannot dump TCP
# sockets on kernels >= 6.16, so CRIU comes from Debian unstable with a low apt pin: only
# the packages named below are taken from there.
set -euo pipefail

say()  { printf '[install-deps] %s\n' "$*"; }
fail() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (try: sudo $0)"
command -v apt-get >/dev/null || fail "apt-get not found: Continuity's installer supports Debian 12 (bookworm) and later"

export DEBIAN_FRONTEND=noninteractive
BASE_PKGS=(gcc libc6-dev redis-server postgresql iptables nftables iproute2 libnetfilter-queue1 libpcap0.8 sqlite3 procps psmisc util-linux ca-certificates openssl tcpdump arping chromium python3-matplotlib)

missing=()
for p in "${BASE_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

updated=0
apt_update() { if [ "$updated" -eq 0 ]; then say "apt-get update"; apt-get update -qq || fail "apt-get update failed: check the Debian mirrors in /etc/apt/sources.list.d"; updated=1; fi; }

if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  say "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || fail "could not install ${missing[*]}"
else
  say "base packages already installed"
fi

# The PostgreSQL tests need initdb, pg_ctl and postgres (from the Debian release itself, never the pinned ones below).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || fail "postgresql is installed but no /usr/lib/postgresql/<version>/bin/initdb and pg_ctl: run 'apt-get install --reinstall postgresql' to see why"
say "PostgreSQL server binaries: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"

criu_ok() {
  command -v criu >/dev/null 2>&1 || return 1
  local v; v=$(criu --version 2>/dev/null | awk '/Version/ {print $2}')
  case "$v" in 4.[2-9]*|4.[1-9][0-9]*|[5-9].*) ;; *) return 1;; esac
  criu check >/dev/null 2>&1
}

if criu_ok; then
  say "CRIU $(criu --version | awk '/Version/ {print $2}') already installed and 'criu check' passes"
else
  SRC=/etc/apt/sources.list.d/continuity-sid.sources
  PIN=/etc/apt/preferences.d/continuity-sid
  if [ ! -f "$SRC" ]; then
    say "adding Debian trixie and sid sources ($SRC) with a low pin ($PIN): nothing is taken from them unless asked"
    cat > "$SRC" <<'SRCEOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRCEOF
    cat > "$PIN" <<'PINEOF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=sid
Pin-Priority: 40
PINEOF
    updated=0
  fi
  apt_update
  say "installing criu from Debian unstable (pulls a newer libc6 from Debian 13)"
  apt-get install -y -qq --no-install-recommends -t sid criu libcompel1 >/dev/null \
    || fail "could not install criu from Debian unstable: run 'apt-get install -t sid criu libcompel1' to see why"
  criu_ok || fail "criu $(criu --version 2>/dev/null | awk '/Version/ {print $2}') is installed but 'criu check' fails on kernel $(uname -r): run 'criu check' for the reason"
  say "CRIU $(criu --version | awk '/Version/ {print $2}') installed; 'criu check' passes"
fi

# The kernel features the data plane needs, checked the way it will use them.
for mod in nfnetlink_queue xt_NFQUEUE veth bridge; do modprobe -q "$mod" 2>/dev/null || true; done
ns="ct-probe-$$"
ip netns add "$ns" 2>/dev/null || fail "cannot create a network namespace: the kernel or the sandbox lacks CONFIG_NET_NS"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" iptables -t raw -A PREROUTING -p tcp -d 198.18.0.1 -j NFQUEUE --queue-num 1 2>/dev/null \
  || fail "iptables NFQUEUE target not usable: the kernel lacks CONFIG_NETFILTER_XT_TARGET_NFQUEUE"
say "kernel: network namespaces and iptables NFQUEUE usable"

if ! command -v dotnet >/dev/null 2>&1; then
  fail ".NET SDK not found: install the .NET 10 SDK (dotnet) and run again"
fi
say "done"
