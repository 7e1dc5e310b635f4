"""The runbook's recovery procedures (section 4), automated with the calls the runbook prints."""
