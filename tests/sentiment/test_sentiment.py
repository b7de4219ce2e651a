from bot.sentiment import sentiment, trend


def test_angry_message_scores_clearly_negative():
    assert sentiment("This is ridiculous, your service is useless!!") <= -0.6


def test_neutral_banking_question_scores_near_zero():
    assert abs(sentiment("when will my new card arrive")) < 0.1


def test_grateful_message_scores_positive():
    assert sentiment("thanks, that really helped") > 0.4


def test_support_words_missing_from_vader_count_as_negative():
    assert sentiment("this chat is rubbish and pointless") < -0.5


def test_button_payloads_and_empty_text_are_neutral():
    assert sentiment("/request_human") == 0.0
    assert sentiment("   ") == 0.0


def test_trend_is_last_minus_first_of_the_window():
    assert trend([0.5, 0.0, -0.2, -0.6]) == -0.6
    assert trend([0.1]) == 0.0
