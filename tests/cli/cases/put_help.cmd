@STRATA@ put -h
