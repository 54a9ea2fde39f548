"""One client per external API: URLs, parameters and models; transport concerns live in ``http``."""
