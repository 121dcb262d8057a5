"""Renderers: they only format a report that analysis already computed."""
