"""Project XML (CDISC ODM) export."""
