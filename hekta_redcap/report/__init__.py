"""The trial report for the steering and data monitoring committees: recruitment, flow,
baseline table, retention, data quality, reminders, randomization and registers in one file,
blinded by default; every number from the same computation as the export and the worklist."""
