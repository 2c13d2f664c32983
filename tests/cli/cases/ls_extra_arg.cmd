@STRATA@ ls @FIXTURES@/dense.region extra
