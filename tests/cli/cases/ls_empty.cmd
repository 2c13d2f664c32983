@STRATA@ ls @FIXTURES@/empty.region
