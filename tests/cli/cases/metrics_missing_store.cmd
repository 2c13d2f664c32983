@STRATA@ metrics nostore
