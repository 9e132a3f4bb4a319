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

_HAM = [
    "Hey, are we still meeting at the {place} at {time}?",
    "I'll be a bit late, stuck in traffic. See you at {time}.",
    "Can you pick up some {food} on your way home?",
    "Thanks for dinner last night, it was lovely!",
    "Did you remember to call {name} about the weekend?",
    "Running late, start without me. Be there by {time}.",
    "Ok see you at the {place} then",
    "How was the {event}? Tell me everything tomorrow.",
    "{name} says hi. We're at the {place} if you want to come.",
    "Sorry I missed your call, I was in the {place}. Call you later.",
    "Don't forget we have the {event} on {day}.",
    "Just got home. So tired, going to sleep early tonight.",
    "Can we move our lunch to {day}? Something came up.",
    "I left my keys at the {place}, can you let me in at {time}?",
    "Happy birthday {name}! Hope you have a great day.",
    "Mum wants to know if you're coming for {food} on {day}.",
]

_SPAM = [
    "WINNER! You have been selected to receive a {prize}. Call {phone} now to claim.",
    "URGENT! Your mobile number has won {money}. Text CLAIM to {short} before {day}.",
    "FREE entry to win a {prize}! Reply WIN to {short}. T&Cs apply, {cost}/msg.",
    "Congratulations! You've won a {prize}. To claim call {phone}. Claim code {code}.",
    "Your account has been suspended. Verify now at {url} or lose your {money} credit.",
    "You have 1 new voicemail. Call {phone} to listen. Calls cost {cost}/min.",
    "Claim your FREE {prize} today! Text YES to {short}. Offer ends {day}.",
    "Final notice: {money} cash prize waiting for you. Call {phone} quoting {code}.",
    "Hot singles in your area want to chat! Text CHAT to {short}, {cost} per msg.",
    "Your {prize} is ready for delivery. Confirm your details at {url} now!",
]

_FILL = {
    "place": ["cafe", "station", "library", "gym", "park", "pub", "office", "cinema", "shop"],
    "time": ["6", "7:30", "noon", "half past five", "8pm", "10"],
    "food": ["bread", "milk", "pizza", "curry", "eggs", "cake"],
    "name": ["Sam", "Alex", "Priya", "Tom", "Jess", "Omar", "Lucy", "Dan"],
    "event": ["party", "match", "concert", "interview", "wedding", "meeting"],
    "day": ["Monday", "Tuesday", "Friday", "Saturday", "Sunday", "tomorrow"],
    "prize": ["new iPhone", "holiday for 2", "1000 pound gift card", "brand new car", "camera", "laptop"],
    "money": ["1000 pounds", "2000 cash", "500 pounds", "a 900 prize"],
    "cost": ["150p", "1.50", "50p", "25p"],
    "url": ["www.win-now.biz", "secure-check.co", "prize-claims.net"],
}


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
        templates = _SPAM if label == "spam" else _HAM
        out.append(LabeledText(label, _fill(templates[rng.integers(len(templates))], rng)))
    return out
