"""Web app tests."""
