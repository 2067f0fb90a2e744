"""Helpers shared by the test groups: real servers on free ports, stand-ins, console logins."""
