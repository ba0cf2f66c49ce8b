"""Record export, import, delete and rename; generateNextRecordName."""
