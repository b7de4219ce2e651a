#!/bin/sh
# Entry point of the support image: the first argument picks the service.
#   gateway    the web gateway (python -m bot.web) on 0.0.0.0:$GATEWAY_PORT (8080)
#   rasa       Rasa with its HTTP API and the REST channel on 0.0.0.0:$RASA_PORT (5005),
#              the newest model in $SUPPORT_MODELS_DIR (models: the one trained into /app/models
#              at build time)
#   actions    the action server on 0.0.0.0:$ACTION_SERVER_PORT (5055)
#   analytics  the support quality report (python -m bot.analytics.report), options follow
#   train      print the model's path (trains only if the image's model is stale)
# Anything else runs as a command (e.g. `python -m bot.accounts list`).
# Every setting comes from the environment (bot/config.py); this script only binds all
# interfaces, as a container must, and uses the same command lines as bot/runtime/services.py.
set -eu
cd "${APP_DIR:-/app}"  # the project tree (PROJECT_ROOT); the tests run this script from a checkout

service="${1:-gateway}"
[ "$#" -gt 0 ] && shift

case "$service" in
  gateway)
    exec python -m bot.web --host 0.0.0.0 --port "${GATEWAY_PORT:-8080}" "$@"
    ;;
  rasa)
    : "${EVENTS_DB_URL:?EVENTS_DB_URL must be set (Rasa's SQL event broker, endpoints.yml)}"
    : "${ACTION_SERVER_URL:?ACTION_SERVER_URL must be set (endpoints.yml action_endpoint)}"
    # numeric libraries on one thread each, as bot/runtime/services.py RASA_THREADS_ENV
    export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
    # the project's entry point (patches Rasa, adds the API token) wins over plain `rasa`
    if [ -f bot/runtime/rasa_server.py ]; then set -- python -m bot.runtime.rasa_server run "$@"
    else set -- rasa run "$@"; fi
    exec "$@" --enable-api --model "${SUPPORT_MODELS_DIR:-models}" --endpoints endpoints.yml \
      --credentials credentials.yml --interface 0.0.0.0 --port "${RASA_PORT:-5005}"
    ;;
  actions|action-server)
    if [ -f bot/runtime/action_server.py ]; then
      exec python -m bot.runtime.action_server --actions actions \
        --interface 0.0.0.0 --port "${ACTION_SERVER_PORT:-5055}" "$@"
    fi
    exec rasa run actions --actions actions --port "${ACTION_SERVER_PORT:-5055}" "$@"
    ;;
  analytics)
    exec python -m bot.analytics.report "$@"
    ;;
  train)
    exec python -m bot.runtime.training "$@"
    ;;
  *)
    exec "$service" "$@"
    ;;
esac
