# lockd's own image.
#
#   DOCKER_BUILDKIT=1 docker build -t lockd .
#   docker run --rm -p 8000:8000 -v lockd-data:/var/lib/lockd lockd
#
# No "# syntax=" line on purpose: the Dockerfile frontend built into Docker >= 20.10 already
# supports RUN --mount (cache, secret), and a syntax line would make every build pull
# docker/dockerfile from a registry, which air-gapped builders cannot reach.
#
# The base is pinned by digest so a rebuild gets the same bytes. To move it, read the new digest
# with `docker buildx imagetools inspect python:3.11-slim-bookworm` and change it here (one line).
# Tests and air-gapped builders pass their own base: --build-arg BASE_IMAGE=local/debian-python.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# ---- builder: compilers and pip live here and never reach the runtime image ----------------
FROM ${BASE_IMAGE} AS builder

# Every dependency of lockd ships x86_64 wheels today; the compilers are here so a pinned sdist
# (or a platform without a wheel) still builds, without a compiler ever shipping in the runtime.
ARG BUILD_PACKAGES="gcc libc6-dev"
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
    && if [ -n "$BUILD_PACKAGES" ]; then \
         apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $BUILD_PACKAGES; \
       fi

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
# Only the lock enters this layer, so editing lockd's code does not re-run the install.
COPY requirements/runtime.txt /tmp/runtime.txt
# --require-hashes --no-deps: exactly the files pinned in lockd's own lock, nothing resolved here.
# The cache mount keeps downloaded wheels across builds without putting them in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/python -m pip install --require-hashes --no-deps -r /tmp/runtime.txt \
    && rm -rf /opt/venv/share/man
# pip and setuptools (about 25 MB) only served the install; the running service never needs them.
RUN if ! grep -qiE '^(pip|setuptools)==' /tmp/runtime.txt; then \
      /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools; \
    fi

# ---- runtime: the interpreter, the venv, lockd, its migrations; no compiler, no pip cache ---
FROM ${BASE_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH \
    LOCKD_DATABASE_URL=sqlite:////var/lib/lockd/lockd.db \
    LOCKD_HOST=0.0.0.0 \
    LOCKD_PORT=8000

# A fixed numeric uid so Kubernetes `runAsNonRoot` can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 lockd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lockd --shell /usr/sbin/nologin lockd \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/lockd

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Code and migrations stay owned by root: the service user can read them, not rewrite them.
# migrations/ goes where a wheel puts it, as the package lockd.migrations (see setup.py).
COPY lockd /app/lockd
COPY migrations /app/lockd/migrations
COPY pyproject.toml alembic.ini* /app/

USER 10001:10001
VOLUME ["/var/lib/lockd"]
EXPOSE 8000

# urllib instead of curl: the runtime image carries no HTTP client of its own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LOCKD_PORT', '8000'), timeout=4)"]

# Migrations first (idempotent: `alembic upgrade head`), then the server replaces the shell so it
# receives SIGTERM directly. docker-compose and Kubernetes run `python -m lockd migrate` once as a
# separate step and start this image with the plain `serve` command instead.
CMD ["sh", "-c", "python -m lockd migrate && exec python -m lockd serve --host \"$LOCKD_HOST\" --port \"$LOCKD_PORT\""]
