"""Quality analytics: does the bot help customers, or only look efficient?

The pipeline, one module per step:

- :mod:`bot.analytics.events`   typed events, the common language of every source;
- :mod:`bot.analytics.sources`  reads them from the durable stores (Rasa's SQL event broker,
  the queue's Redis streams, satisfaction answers, escalation labels);
- :mod:`bot.analytics.records`  folds one conversation's events into a :class:`ConversationRecord`;
- :mod:`bot.analytics.measures` pure functions over records, each definition in its docstring
  (and in ``docs/analytics.md``);
- :mod:`bot.analytics.estimate` estimated satisfaction for every conversation, calibrated on ratings;
- :mod:`bot.analytics.replay`   a changed escalation policy run in shadow over recorded turns;
- :mod:`bot.analytics.learning` NLU training candidates exported as Rasa YAML;
- :mod:`bot.analytics.report`   the figures in the terminal, as HTML or PNG;
- :mod:`bot.analytics.api`      the dashboard's HTTP API; :mod:`bot.analytics.simulate` fills it.
"""
