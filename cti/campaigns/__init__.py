"""Outbound campaigns: what a campaign is (spec), when a contact may be called
(schedule), and the dialer that calls them through Asterisk."""
