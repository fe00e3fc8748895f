"""The stream contract: parse, reason codes (the hot path, hand-written on purpose).

``entries``: `lq:incidents` and `lq:pings`; ``changes``: `lq:changes`; ``deadletters``: what a
refused entry becomes on `lq:dead`, and how it is read, re-driven and purged.
"""
