"""The only code that speaks SQL: engines and transactions, the table models, the hash-chained event log and the schema migrations."""
