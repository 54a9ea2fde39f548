"""Integrations: each combines two clients through pure matching and planning functions."""
