"""Data stage: read, validate and split scored evidence. Imports no other stage."""
