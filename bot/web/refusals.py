"""Refusals remembered: a client Redis has just refused is refused again without asking Redis.

A customer that floods (several connections, ``Retry-After`` ignored) used to cost the gateway a
Lua script in Redis and a full request per refusal, ~410 refusals a second on the two cores Rasa
needs (docs/performance.md, "1,000 conversations"). When Redis refuses a set of rate checks it
answers how long until they could pass (GCRA, :mod:`bot.web.limits`); :class:`RecentRefusals`
keeps that time, per set of limit keys, in this process, and until then the same set is refused
at once with a pre-encoded 429 and ``Retry-After``.

Why it can only refuse early, never allow what Redis refuses nor refuse what Redis allows:

* Only Redis's own refusals are kept (nothing is ever counted here), under the exact set of keys
  Redis refused; another set (e.g. the same address in another conversation) asks Redis.
* The time kept is the moment the script was *sent* plus the wait Redis answered, less
  :data:`MARGIN`, so it is never later than the time Redis would allow (the script ran after it
  was sent; the margin covers Redis's clock, which the script reads in whole milliseconds).
  Another gateway's charges only push a limit's time later (GCRA), so a refusal stays true on
  every replica; each gateway keeps only its own refusals and asks Redis otherwise.
* A refusal that depended on a credential (a turn's script checks the conversation's token
  before the limits) is kept with a proof (the token's SHA-256); a request without the same proof
  is not refused here and gets Redis's answer (403/404) as before, so a forged request can
  neither be refused in another client's place nor learn that it is limited.
* At most ``max_entries`` refusals are kept; beyond, the oldest is forgotten (forgetting only
  means asking Redis again). Expired entries are dropped when looked up.

**A repeat waits for its answer.** A client refused from memory is one that did not wait as
told (a well-behaved one comes back after ``Retry-After``, when its refusal is over). Its 429 is
answered after ``RATE_LIMIT_REPEAT_DELAY_SECONDS`` (default 1 s, never more than its
``Retry-After``; the idea of HAProxy's ``tarpit``): the wait costs a timer, not CPU, and a
client that waits for each answer before sending again (HTTP/1.1) gets one refusal per second
and connection instead of as many as the gateway can answer. The answer still comes, with its
``Retry-After``: overload is answered, never a hang. Repeats are counted in the metrics
(``support_gateway_errors_total{kind="rate_limited"}``) but not logged line by line (the first
refusal, Redis's, is).

A customer message refused from memory is refused before its body is read: a repeat with a
malformed body gets its 429, where Redis's first refusal would have been preceded by the 400.
A limit reset in Redis by hand (deleting its key) is seen by this cache only when its time runs
out: at most the ``Retry-After`` that was answered.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Sequence

MAX_ENTRIES = 10_000
MARGIN = 0.005  # seconds: Redis's whole-millisecond clock and the two clocks' rates


class RecentRefusals:
    """Sets of limit keys Redis refused, each until the earliest time Redis could allow it."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        repeat_delay: float = 0.0,
    ) -> None:
        self.max_entries = max_entries
        self.repeat_delay = repeat_delay  # a repeat's 429 is answered after this long
        self.clock = clock
        self._until: dict[tuple[str, ...], tuple[float, str]] = {}  # keys -> (deadline, proof)
        self.refused = 0  # requests refused here, without Redis

    def __len__(self) -> int:
        return len(self._until)

    def remember(self, keys: Sequence[str], wait: float, sent_at: float, proof: str = "") -> None:
        """Redis refused ``keys`` for ``wait`` seconds in a script sent at ``sent_at`` (this
        cache's clock), for a request that proved ``proof``."""
        if wait <= MARGIN or not keys or self.max_entries <= 0:
            return
        key = tuple(keys)
        self._until.pop(key, None)  # re-inserted last: the oldest entry is first in the dict
        while len(self._until) >= self.max_entries:
            self._until.pop(next(iter(self._until)))
        self._until[key] = (sent_at + wait - MARGIN, proof)

    def wait(self, keys: Sequence[str], proof: str = "") -> float:
        """Seconds until ``keys`` could pass, if Redis refused them recently for a request with
        the same ``proof``; else 0.0 (ask Redis)."""
        key = tuple(keys)
        entry = self._until.get(key)
        if entry is None:
            return 0.0
        deadline, kept = entry
        left = deadline - self.clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        if not hmac.compare_digest(kept, proof):
            return 0.0
        self.refused += 1
        return left

    def retry_after(self, keys: Sequence[str], proof: str = "") -> int:
        """:meth:`wait` as a whole ``Retry-After`` (0: not known refused)."""
        left = self.wait(keys, proof)
        return max(1, math.ceil(left)) if left > 0 else 0
