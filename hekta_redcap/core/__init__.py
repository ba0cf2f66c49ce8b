"""Infrastructure every stage uses: errors, settings, the clock, log lines, findings."""
