"""Arms, events, the instrument-event mapping and repeating instruments/events."""
