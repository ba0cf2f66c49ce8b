"""Registers: who to link, what comes back, and the outcomes analysts need (docs/registers.md).

The layouts under `instruments/registers/` (`definitions.registers`) say what each source's
delivery holds. From the synced store comes the linkage list (`linkage`: consenting
participants' checked national identity numbers with the project's serial number, `lopenr`;
the key between record ids and serial numbers is kept apart, owner-only). Deliveries come back
keyed by `lopenr` and are read, checked against their layout and kept with their provenance in
a columnar store on disk (`delivery`, `store`: Parquet, queried with DuckDB); they never go into
REDCap. From them come the person-month panel and the endpoints at 18, 60 and 120 months
(`outcomes`), which the analyst export carries.
"""
