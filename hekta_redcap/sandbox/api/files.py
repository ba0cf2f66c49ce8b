"""Files on file fields and the file repository."""
