"""A generated stand-in for the SMS Spam Collection, so chapter 6 runs offline.

:func:`demo_messages` writes short text messages from templates: "ham" (everyday notes between
friends) and "spam" (prizes, urgent account notices, premium-rate numbers), with about one message
in four spam -- unbalanced, like the real data (13 % spam). The two classes come from different
templates (a few fillers, such as the days of the week, appear in both), so a classifier has to pick
up the wording; the task is easy enough for a small model trained for a minute on a CPU. It is not a benchmark; use the real file for real numbers
(``python -m gpt download sms-spam``).
"""
from __future__ import annotations

import numpy as np

from gpt.finetune.classify import LabeledText

__all__ = ["demo_messages"]

# A message is opener + body + closer, each drawn from its class's lists, so the same body comes with
# many framings and a classifier has to learn the words rather than memorise a few sentences. Some
# words ("free", "call", "win", "text") appear on both sides, as they do in real messages.
_HAM = {
    "opener": ["", "", "Hey, ", "Hi {name}, ", "Ok ", "Sorry, ", "Morning! ", "Hey {name}! ", "So ",
               "Hey, just wanted to check: ", "Quick question, ", "Yo ", "Hiya, "],
    "body": [
        "are we still meeting at the {place} at {time}?",
        "I'll be a bit late, stuck in traffic.",
        "can you pick up some {food} on your way home?",
        "thanks for dinner last night, it was lovely.",
        "did you remember to call {name} about the weekend?",
        "running late, start without me.",
        "see you at the {place} then.",
        "how was the {event}? Tell me everything tomorrow.",
        "{name} says hi, we're at the {place} if you want to come.",
        "sorry I missed your call, I was at the {place}.",
        "don't forget we have the {event} on {day}.",
        "just got home, so tired. Going to sleep early tonight.",
        "can we move lunch to {day}? Something came up.",
        "I left my keys at the {place}, can you let me in at {time}?",
        "happy birthday {name}! Hope you have a great day.",
        "mum wants to know if you're coming for dinner on {day}.",
        "are you free tonight? We could get {food}.",
        "did we win the {event} in the end?",
        "call me when you get home, no rush.",
        "text me when you're at the {place} and I'll come down.",
        "are we still on for dinner tonight?",
        "I'm at the {place} with {name}, come over if you like.",
        "what time does the {event} start on {day}?",
        "thanks again for your help with the move.",
        "can't talk now, in a meeting. Later?",
    ],
    "closer": ["", "", "", " Let me know!", " See you soon.", " x", " :)", " Thanks!", " Talk later.",
               " Love you.", " Cheers."],
}

_SPAM = {
    "opener": ["", "", "URGENT! ", "WINNER!! ", "Congratulations! ", "FREE MSG: ", "Dear customer, ",
               "Final notice: ", "IMPORTANT: ", "Last chance! "],
    "body": [
        "you have been selected to receive a {prize}.",
        "your mobile number has won {money} cash.",
        "you are a winner! Claim your {prize} now.",
        "you have won a guaranteed {money} award.",
        "your account has been suspended. Verify your details at {url}.",
        "you have 1 new voicemail. Call {phone} to listen.",
        "claim your FREE {prize} today.",
        "{money} in cash is waiting for you.",
        "hot singles in your area want to chat!",
        "your {prize} is ready for delivery. Confirm your address at {url}.",
        "you are specially selected to receive {money} or a {prize}.",
        "FREE entry to our weekly draw to win a {prize}.",
        "your loan of {money} has been approved, no credit check.",
        "as a valued customer you get a FREE upgrade to the latest {prize}.",
        "we tried to contact you about your {money} reward.",
    ],
    "closer": ["", " Call {phone} now to claim.", " Text WIN to {short}.", " Reply YES to {short}.",
               " T&Cs apply, {cost}/msg.", " Claim code {code}.", " Offer ends {day}.", " Reply STOP to opt out.",
               " Call {phone}, {cost}/min.", " Visit {url} now!"],
}

_FILL = {
    "place": ["cafe", "station", "library", "gym", "park", "pub", "office", "cinema", "shop"],
    "time": ["6", "7:30", "noon", "half past five", "8pm", "10"],
    "food": ["bread", "milk", "pizza", "curry", "eggs", "cake"],
    "name": ["Sam", "Alex", "Priya", "Tom", "Jess", "Omar", "Lucy", "Dan"],
    "event": ["party", "match", "concert", "interview", "wedding", "quiz"],
    "day": ["Monday", "Tuesday", "Friday", "Saturday", "Sunday", "tomorrow"],
    "prize": ["new iPhone", "holiday for 2", "1000 pound gift card", "brand new car", "camera", "laptop"],
    "money": ["1000 pounds", "2000 pounds", "500 pounds", "900 pounds", "$1000", "5000 dollars"],
    "cost": ["150p", "1.50", "50p", "25p"],
    "url": ["www.win-now.biz", "secure-check.co", "prize-claims.net"],
}


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, rng: np.random.Generator) -> str:
    values = {key: options[rng.integers(len(options))] for key, options in _FILL.items()}
    values["phone"] = "09" + "".join(str(d) for d in rng.integers(0, 10, 9))
    values["short"] = str(rng.integers(10000, 90000))
    values["code"] = "".join(chr(c) for c in rng.integers(65, 91, 2)) + str(rng.integers(100, 1000))
    return template.format(**values)


def demo_messages(n: int = 1000, spam_fraction: float = 0.25, seed: int = 123) -> list[LabeledText]:
    """``n`` generated messages, about ``spam_fraction`` of them labelled "spam", the rest "ham",
    in random order (the same ``seed`` gives the same list)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not 0 < spam_fraction < 1:
        raise ValueError(f"spam_fraction must be strictly between 0 and 1, got {spam_fraction!r}")
    rng = np.random.default_rng(seed)
    n_spam = min(n - 1, max(1, round(n * spam_fraction)))
    labels = ["spam"] * n_spam + ["ham"] * (n - n_spam)
    rng.shuffle(labels)
    out = []
    for label in labels:
        parts = _SPAM if label == "spam" else _HAM
        opener, body, closer = (parts[k][rng.integers(len(parts[k]))] for k in ("opener", "body", "closer"))
        if not opener or opener.endswith(("! ", ": ", ". ")):
            body = _capitalize(body)
        out.append(LabeledText(label, _capitalize(_fill(opener + body + closer, rng))))
    return out
