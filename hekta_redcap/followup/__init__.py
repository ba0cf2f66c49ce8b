"""Follow-up windows and states, the worklist, reminders, the write-back, the digest."""
