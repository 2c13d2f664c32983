@STRATA@ inspect
