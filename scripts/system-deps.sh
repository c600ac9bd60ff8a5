#!/usr/bin/env bash
# System packages the test suite drives for real: headless Chromium (report tests) and
# PostgreSQL 15 (distributed sweep tests). Installs what is missing when run as root with apt;
# otherwise says what is missing and leaves it to the tests (which fail under CI=true).
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "note: ${need[*]} missing; the browser/PostgreSQL tests will skip (or fail under CI=true)" >&2
fi
exit 0
