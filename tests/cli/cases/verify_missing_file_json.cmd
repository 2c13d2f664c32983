@STRATA@ verify --json @FIXTURES@/nonexistent.region
