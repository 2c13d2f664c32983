@STRATA@ context @FIXTURES@/store
