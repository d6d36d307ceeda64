"""Test the tests: break an image on purpose, one fault at a time, and see which suite catches it."""
