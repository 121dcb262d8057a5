"""Reference computing chains that hepaudit audits (tracking, dqm, distill)."""
