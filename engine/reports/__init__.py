"""Receivables reports: the figures (aging, KPIs, effectiveness, owners, forecast) and their HTML page."""
