@STRATA@ ls @FIXTURES@/dense.region
