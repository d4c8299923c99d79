"""Generators and converters of the datasets the tracks ship with."""
