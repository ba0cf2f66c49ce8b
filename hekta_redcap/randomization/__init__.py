"""Randomization: concealed allocation on REDCap's randomization module, and its audit.

The study file's `randomization:` block is the design (`design`). From it come the allocation
tables a person uploads in REDCap (`tables`: stratified permuted blocks of randomly varying
size, one table for development and an independent one for production); `allocate`
randomizes one record through REDCap's API once consent and the baseline forms are in (the
only place, beside deploy and the follow-up write-back, that writes to REDCap); `audit`
checks every allocation against the table, REDCap's logging and the store.

    >>> design = design_of(load_project("hekta"))
    >>> design.columns, [len(s) for s in design.strata][:1]
    (['rand_group', 'site'], [1])
"""
