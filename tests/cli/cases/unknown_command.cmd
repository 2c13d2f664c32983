@STRATA@ frobnicate @FIXTURES@/dense.region
