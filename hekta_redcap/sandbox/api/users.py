"""Users, user roles, role mappings, data access groups and user-DAG mappings."""
