"""Fetch a lock from lockd into a directory: requirements.txt, and lock.json with its target.

`python3 fetch_lock.py LOCKD_URL SOURCE DIR`, where SOURCE is `/v1/blobs/<lock digest>` (an
immutable lock) or `/v1/names/<name>` (whatever the name serves now). The token, if any, is read
from the BuildKit secret /run/secrets/lockd_token, so it never enters a layer. Both files are
checked on arrival: requirements.txt against the sha256 lockd states for it (Digest-Sha256), and
lock.json against the lock digest itself (lock.json is the lock's canonical JSON, whose sha256
the digest is). The lock digest is written to DIR/lock-digest. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TOKEN = Path("/run/secrets/lockd_token")


def _get(url: str) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url)
    if TOKEN.exists() and TOKEN.read_text().strip():
        request.add_header("Authorization", "Bearer " + TOKEN.read_text().strip())
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise SystemExit(f"lockd answered {exc.code} for {url}: {detail}") from None


def main(base: str, source: str, directory: str) -> int:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    base = base.rstrip("/")
    text, headers = _get(f"{base}{source}/requirements.txt")
    stated = headers.get("digest-sha256")
    if stated and hashlib.sha256(text).hexdigest() != stated:
        raise SystemExit("requirements.txt does not match the sha256 lockd stated for it")
    digest = headers.get("lock-digest") or source.rsplit("/", 1)[-1]
    lock, _ = _get(f"{base}/v1/blobs/{digest}/lock.json")
    if hashlib.sha256(lock).hexdigest() != digest:
        raise SystemExit(f"lock.json does not hash to the lock digest {digest}")
    (target / "requirements.txt").write_bytes(text)
    (target / "lock.json").write_bytes(lock)
    (target / "lock-digest").write_text(digest + "\n")
    print(f"fetched lock {digest} from {source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(*sys.argv[1:4]))
