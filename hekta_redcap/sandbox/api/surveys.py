"""Survey links, queue links, access and return codes, participant lists."""
