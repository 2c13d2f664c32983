@STRATA@ context nostore docs:0
