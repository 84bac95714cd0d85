# The OME image: the wheel is built in a throwaway stage so the runtime image
# carries neither the sources nor the build tools, only the installed package.

FROM python:3.11-slim AS build
# The matching engine and the command step are compiled with mypyc (setup.py,
# MYPYC_ENGINE=1), which needs a C compiler and mypy here only; the runtime
# stage gets the wheel.
# Debian's gcc follows the base image's release; a pinned version would break at its next update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
# mypyc type-checks the compiled modules against the libraries they import
# (eth-hash, orjson, structlog), so they must be installed here too: the
# project's own dependency list, read from pyproject.toml so that it cannot
# drift from it.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir "mypy==2.4.1" "setuptools==80.9.0" "wheel==0.45.1" \
        --requirement /tmp/requirements.txt
COPY setup.py README.md ./
COPY ome ./ome
RUN MYPYC_ENGINE=1 pip wheel --no-deps --no-build-isolation --no-cache-dir --wheel-dir /dist .

FROM python:3.11-slim
# Copied rather than bind-mounted so the classic builder works too; the wheel
# is about 300 kB.
COPY --from=build /dist /dist
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without
# looking the name up, and so fsGroup/volume ownership lines up with it.
RUN pip install --no-cache-dir /dist/tracer_ome-*.whl \
    && rm -r /dist \
    && groupadd --system --gid 10001 ome \
    && useradd --system --uid 10001 --gid ome --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ome \
    && mkdir /data \
    && chown ome:ome /data

# TLS ends at the load balancer or ingress; the dump and the journal go to the
# volume, not to the container's throwaway layer. pip compiled the bytecode at install
# time, so Python never needs to write next to its modules (read-only root).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OME_FORCE_NO_TLS=true \
    OME_DUMPFILE=/data/omedump.json \
    OME_JOURNAL_DIR=/data/journal

# A named volume copies this folder's ownership, so the non-root user can write.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8989

# Python's own urllib (the slim image has no curl, and none is added for this),
# on the port the service itself resolved from the environment. urlopen raises
# on anything but a 2xx answer, which fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from ome.config import load_settings; urllib.request.urlopen(f'http://127.0.0.1:{load_settings([]).port}/', timeout=4)"]

# Exec form: the service is PID 1 and gets SIGTERM itself, which is what makes
# it finish in-flight requests and write the dump. Flags go after the image name.
ENTRYPOINT ["ome"]
CMD []
