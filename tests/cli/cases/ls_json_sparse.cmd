@STRATA@ ls @FIXTURES@/sparse.region --json
