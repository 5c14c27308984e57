"""Figures from the outcome log: KPIs, IVR traffic and drop-off, for the reports page,
`ivr report` and `ivr graph`."""
