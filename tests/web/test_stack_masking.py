"""Card numbers never reach Rasa's tracker store or the gateway's log (real Rasa and gateway)."""

from __future__ import annotations

import json

import pytest

from tests.web.conftest import LOGS

pytestmark = pytest.mark.model
PAN_SPACED = "4111 1111 1111 1111"
PAN = "4111111111111111"


async def test_a_card_number_is_masked_before_it_reaches_rasa_and_the_log(http, stack):
    async with http.post(f"{stack.url}/api/conversations") as response:
        created = await response.json()
    conversation_id = created["conversation_id"]
    headers = {"Authorization": f"Bearer {created['token']}"}
    text = f"my card {PAN_SPACED} was charged twice"
    url = f"{stack.url}/api/conversations/{conversation_id}/messages"
    async with http.post(url, json={"text": text}, headers=headers) as response:
        assert response.status == 200
        body = await response.json()
    assert body["messages"][0]["text"] == "my card 411111******1111 was charged twice"

    tracker_url = f"{stack.rasa_url}/conversations/{conversation_id}/tracker"
    async with http.get(tracker_url, params={"token": stack.rasa_token}) as response:
        tracker = json.dumps(await response.json())
    assert "411111******1111" in tracker
    assert PAN not in tracker and PAN_SPACED not in tracker
    gateway_log = (LOGS / "gateway-e2e.log").read_text()
    assert PAN not in gateway_log and PAN_SPACED not in gateway_log
