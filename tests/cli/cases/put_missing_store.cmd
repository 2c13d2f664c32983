@STRATA@ put nostore docs 0 - </dev/null
