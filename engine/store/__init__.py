"""The only code that speaks SQL: engines and transactions, the table models, the hash-chained event log and the schema migrations.

The reads every web request or invoice page makes build their statements once, at import (or once per shape
where optional filters change them), and bind their values at execution: on SQLite, building a Core
statement and its cache key costs three to four times running a small one (an invoice's id by number: 117 µs
built per call, 40 µs built once; the explain row: 352 µs against 95 µs, on the 100,000-invoice benchmark
book).
"""
