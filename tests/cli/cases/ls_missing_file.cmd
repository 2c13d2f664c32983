@STRATA@ ls @FIXTURES@/nonexistent.region
