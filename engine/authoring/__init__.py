"""Policy authoring on a book: explain one invoice, simulate the policies forward, diff two policy sets."""
