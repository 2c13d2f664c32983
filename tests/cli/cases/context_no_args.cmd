@STRATA@ context
