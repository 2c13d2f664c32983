@STRATA@ ls --json=yes @FIXTURES@/dense.region
