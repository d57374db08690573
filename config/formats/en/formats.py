"""English date formats of the admin: timestamps with seconds and zone."""

# Django's own: "N j, Y, P" (minutes, a.m./p.m.).
DATETIME_FORMAT = "N j, Y, H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
