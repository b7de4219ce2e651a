"""Sentiment of a customer's message: VADER's compound score, offline, with a few support words.

VADER (Hutto & Gilbert, 2014) is a lexicon- and rule-based analyser tuned for short social text: no
model download, microseconds per message. Its compound score runs from -1 (most negative) to +1.
A handful of words customers use about bad service that VADER's lexicon lacks are added with
valences on VADER's own -4..+4 scale.
"""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# Words that name the customer's problem rather than their mood ("the transfer failed", "wrong
# amount", "card was stolen"): in a support chat they describe the case, so they weigh little;
# the mood comes from words such as "ridiculous", "useless", "frustrated".
PROBLEM_WORDS = (
    "wrong",
    "error",
    "errors",
    "rejected",
    "rejecting",
    "reject",
    "problem",
    "problems",
    "failed",
    "failing",
    "fails",
    "fail",
    "failure",
    "unsuccessful",
    "block",
    "blocked",
    "broken",
    "broke",
    "declined",
    "denied",
    "deny",
    "dispute",
    "disputed",
    "fraud",
    "fraudulent",
    "stolen",
    "steal",
    "stealing",
    "stole",
    "lost",
    "lose",
    "losing",
    "accident",
    "mistake",
    "mistaken",
    "dead",
    "died",
    "defect",
    "charged",
    "fee",
    "fees",
    "cancel",
    "cancelled",
    "missing",
    "stuck",
    "issue",
    "issues",
    "bad",
)
PROBLEM_VALENCE = -0.3

SUPPORT_LEXICON: dict[str, float] = {
    **{word: PROBLEM_VALENCE for word in PROBLEM_WORDS},
    "rubbish": -2.0,
    "pointless": -1.8,
    "shambles": -2.2,
    "unhelpful": -1.8,
    "clueless": -1.6,
    "fed": -0.8,  # "fed up"
    "joke": -0.6,  # in a support chat "this is a joke" is a complaint, not a laugh
}


@lru_cache(maxsize=1)
def analyzer() -> SentimentIntensityAnalyzer:
    """The process's one analyser (loading the lexicon takes a few milliseconds)."""
    vader = SentimentIntensityAnalyzer()
    vader.lexicon.update(SUPPORT_LEXICON)
    return vader


def sentiment(text: str) -> float:
    """VADER compound score of `text`, rounded to 3 places; 0.0 for empty text and button payloads."""
    text = (text or "").strip()
    if not text or text.startswith("/"):
        return 0.0
    return round(analyzer().polarity_scores(text)["compound"], 3)


def trend(scores: list[float], window: int = 3) -> float:
    """Change of sentiment over the last `window` messages: last minus first (negative = worsening)."""
    recent = scores[-window:]
    if len(recent) < 2:
        return 0.0
    return round(recent[-1] - recent[0], 3)
