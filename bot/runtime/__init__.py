"""Runtime plumbing: how the product is built, started and stopped (no domain logic here).

- :mod:`bot.runtime.launcher`     the whole stack (README command 1, ``scripts/start.sh``);
- :mod:`bot.runtime.services`     child processes (action server, Rasa, gateway), health checks;
- :mod:`bot.runtime.action_server` the action server: rasa_sdk's app on loopback behind a token;
- :mod:`bot.runtime.rasa_server`  ``rasa``, patched (validator compiled once, event lookup) and with
  its HTTP API token taken from the settings;
- :mod:`bot.runtime.internal_secrets` the services' shared secrets, generated once per data dir;
- :mod:`bot.runtime.redis_server` a local ``redis-server`` for the launcher, tests and benchmarks;
- :mod:`bot.runtime.training`     the Rasa model, cached on the content it is trained from;
- :mod:`bot.runtime.datasets`     ``python -m bot.runtime.datasets``: public datasets -> Rasa data;
- :mod:`bot.runtime.chat`         ``python -m bot.runtime.chat``: chat with Rasa in a terminal;
- :mod:`bot.runtime.ports`        ``free_port()``, the one helper that picks a free TCP port.
"""
