"""Helpers that know no app of the portal: settings from the environment, mail, CSV, i18n.

The bottom layer: it imports Django and the standard library, never an app of this project
(`make lint` checks it).
"""
