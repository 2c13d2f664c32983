@STRATA@ verify
