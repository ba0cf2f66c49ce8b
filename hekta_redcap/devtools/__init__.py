"""Tools for developers and the demo: the local REDCap-compatible server, the synthetic cohort, the
demo. Nothing outside this package imports it.
"""
