"""Chat with the running bot in a terminal, through Rasa's REST channel.

`python -m bot.runtime.chat [--rasa-url URL]`. Buttons are listed with numbers; type the number to
press one. Empty line or Ctrl-D quits.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
import uuid

from bot.config import get_settings


def send(rasa_url: str, sender: str, message: str) -> list[dict]:
    """Send one customer message to Rasa's REST webhook and return the bot's replies."""
    request = urllib.request.Request(
        f"{rasa_url.rstrip('/')}/webhooks/rest/webhook",
        data=json.dumps({"sender": sender, "message": message}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _show(replies: list[dict]) -> list[dict]:
    buttons: list[dict] = []
    for reply in replies:
        if reply.get("text"):
            print(f"bot> {reply['text']}")
        for button in reply.get("buttons", []):
            buttons.append(button)
            print(f"     [{len(buttons)}] {button['title']}")
    return buttons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa-url", default=get_settings().rasa_url)
    args = parser.parse_args()
    sender = f"terminal-{uuid.uuid4().hex[:8]}"
    buttons: list[dict] = []
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        if text.isdigit() and 0 < int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        buttons = _show(send(args.rasa_url, sender, text))


if __name__ == "__main__":
    main()
