@STRATA@ ls --json @FIXTURES@/dense.region
