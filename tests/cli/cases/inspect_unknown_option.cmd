@STRATA@ inspect --json @FIXTURES@/dense.region
