"""The web gateway: customer widget, demo page, agent console, HTTP API and WebSockets.

``python -m bot.web --host H --port P`` runs it (the launcher does); :func:`bot.web.app.create_app`
builds the aiohttp application for tests and the benchmark. See ``docs/web.md``.
"""
