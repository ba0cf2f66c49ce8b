"""REDCap's own languages and formats: export names, field and validation types, the data
dictionary and its rules, the logic syntax.
"""
