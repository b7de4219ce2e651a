"""Quality analytics: does the bot help customers, or only look efficient?

The pipeline, one module per step (definitions of every measure: ``docs/analytics.md``):

- :mod:`bot.analytics.events`       typed events, the common language of every source;
- :mod:`bot.analytics.rasa_events`  Rasa's SQL event broker (SQLite or PostgreSQL) -> events;
- :mod:`bot.analytics.audit_events` the escalation audit stream and ticket histories -> events;
- :mod:`bot.analytics.queue_source` every ticket of the queue with its audit history;
- :mod:`bot.analytics.labels`       the agents' one-click escalation labels (a Redis stream);
- :mod:`bot.analytics.collect`      all sources joined per conversation;
- :mod:`bot.analytics.records`      one conversation's events folded into a ``ConversationRecord``;
- :mod:`bot.analytics.measures`     pure functions over records, each definition in its docstring;
- :mod:`bot.analytics.estimate`     estimated satisfaction for every conversation, calibrated;
- :mod:`bot.analytics.summary`      every figure of a period, JSON-ready (API and report);
- :mod:`bot.analytics.replay`       a changed escalation policy run in shadow over recorded turns;
- :mod:`bot.analytics.learning`     NLU training candidates exported as Rasa YAML;
- :mod:`bot.analytics.report`       ``python -m bot.analytics.report``: terminal, HTML, PNG;
- :mod:`bot.analytics.api`          the dashboard's HTTP API in the gateway.

``python -m bench.simulate`` (outside the product) drives simulated customers and agents through
the running stack, so the dashboard has something to show.
"""
