#!/usr/bin/env bash
# Makes sure the browser tests (tests/browser) have a Chromium: Debian's
# `chromium` package, installed with apt-get when it is missing and this runs
# as root. Playwright's own browser downloads are never used (no internet is
# assumed). When Chromium cannot be installed this says so loudly; the
# browser tests then skip with the same reason, and everything else runs.
set -u

find_chromium() {
  local candidate
  for candidate in "${IMPORTHUB_CHROMIUM:-}" chromium chromium-browser; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if path=$(find_chromium); then
  echo "Chromium for the browser tests: $path"
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing; installing Debian's chromium with apt-get..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium \
    || echo "apt-get install chromium failed (see above)." >&2
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
  && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing; installing Debian's chromium with sudo apt-get..."
  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
    || echo "sudo apt-get install chromium failed (see above)." >&2
fi

if path=$(find_chromium); then
  echo "Chromium for the browser tests: $path"
  exit 0
fi

cat >&2 <<'MSG'
************************************************************************
* Chromium is NOT installed and could not be installed here (needs root *
* or passwordless sudo, and apt-get). THE BROWSER TESTS WILL BE SKIPPED. *
* Install it with `apt-get install chromium`, or point IMPORTHUB_CHROMIUM *
* at a Chromium binary, then run `make test` again.                      *
************************************************************************
MSG
exit 0
