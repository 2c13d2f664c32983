@STRATA@ ls @FIXTURES@/sparse.region
