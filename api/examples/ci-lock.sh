#!/usr/bin/env bash
# Lock a requirements.in through lockd from a CI job: prints the lock digest on stdout and
# writes the lock file; any error fails the job with lockd's problem detail on stderr.
#
#   LOCKD_URL=https://lockd.internal LOCKD_TOKEN=lockd_… \
#   LOCK_PYTHON=3.11 LOCK_PLATFORM=linux_x86_64 LOCK_CUDA=cu124 \
#   api/examples/ci-lock.sh requirements.in requirements.txt
#
# LOCK_FORMAT picks requirements.txt (default), pylock.toml, conda-lock.yml or json.
set -euo pipefail

in="${1:-requirements.in}"
out="${2:-requirements.txt}"
url="${LOCKD_URL:-http://127.0.0.1:8000}"
query="python=${LOCK_PYTHON:-3.11}&platform=${LOCK_PLATFORM:-linux_x86_64}&format=${LOCK_FORMAT:-requirements.txt}"
if [ -n "${LOCK_CUDA:-}" ]; then
  query="${query}&cuda=${LOCK_CUDA}"
fi

headers="$(mktemp)"
body="$(mktemp)"
trap 'rm -f "$headers" "$body"' EXIT

auth=()
if [ -n "${LOCKD_TOKEN:-}" ]; then
  auth=(-H "Authorization: Bearer ${LOCKD_TOKEN}")
fi

if ! curl --silent --show-error --fail-with-body --retry 2 --max-time 600 \
    -X POST "${auth[@]}" -H "Content-Type: text/plain" \
    --data-binary "@${in}" -D "$headers" -o "$body" "${url%/}/lock?${query}"; then
  echo "ci-lock: lockd could not lock ${in}:" >&2
  cat "$body" >&2
  echo >&2
  exit 1
fi

digest="$(tr -d '\r' < "$headers" | awk 'tolower($1) == "lock-digest:" {print $2}')"
cp "$body" "$out"
echo "$digest"
