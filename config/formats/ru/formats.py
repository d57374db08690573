"""Russian date formats of the admin: timestamps with seconds and zone."""

# Django's own: "j E Y г. G:i". An operator compares events seconds apart
# and reads workers in other zones.
DATETIME_FORMAT = "j E Y г. H:i:s T"
SHORT_DATETIME_FORMAT = "d.m.Y H:i:s T"
