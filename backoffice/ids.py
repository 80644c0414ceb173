"""Stripe-style ids (`prefix_` and 24 random base62 characters): billing objects' ids, events'
and every request's `req_…` id (`backoffice.request_ids`). Here, on the ground floor, so the
request id is made without reaching up into billing."""

from __future__ import annotations

import secrets

ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 24
_ID_SPACE = len(ID_ALPHABET) ** ID_LENGTH


def new_id(prefix: str) -> str:
    """A Stripe-style id: `prefix_` followed by 24 random base62 characters.

    One draw from the OS's random source for the whole id (a `secrets.choice` per character
    asked it 24 times, for every event a billing write records), written in base 62."""
    number = secrets.randbelow(_ID_SPACE)
    characters = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(ID_ALPHABET))
        characters.append(ID_ALPHABET[digit])
    return prefix + "_" + "".join(characters)
