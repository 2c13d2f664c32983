@STRATA@ verify @FIXTURES@/nonexistent.region
