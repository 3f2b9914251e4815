"""Inbound mail, the pure part: what a received message is (bounce, auto-reply, human reply) and what it
seems to say (suggested intents), plus the clues that match it to our notifications and invoices.

    parse.read_message(raw bytes)  -> Inbound (headers, text, kind, bounce status, intents, clues)
    sources                        -> where raw messages come from (a drop folder, an IMAP mailbox)

Nothing here reads or writes the database; `engine.replies` applies a parsed message to the book.
"""

from __future__ import annotations
