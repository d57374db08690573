#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from imports.tracing import tracing_configure

    # runserver serves the web; every other command's guard calls start
    # their own traces (a no-op when tracing is off; see imports.tracing).
    web = len(sys.argv) > 1 and sys.argv[1] == "runserver"
    tracing_configure(process="web" if web else "command")

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
