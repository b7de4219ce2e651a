"""The project's Rasa entry point: ``python -m bot.runtime.rasa_server run ...``.

Applies the project's documented patches to Rasa (:mod:`bot.runtime.action_validation`: action
results checked by a validator compiled once; :mod:`bot.runtime.event_lookup`: event classes
found by name without walking the class tree each time), then
hands the command line to Rasa's own CLI (``rasa.__main__.main``), so every argument of ``rasa``
works unchanged. :func:`bot.runtime.services.rasa_server` starts Rasa this way.
"""

from __future__ import annotations

from bot.runtime import action_validation, event_lookup


def main() -> None:
    action_validation.apply()
    event_lookup.apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
