"""The local store and the sync that fills it from REDCap."""
