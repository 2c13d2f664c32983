@STRATA@ stats nostore
