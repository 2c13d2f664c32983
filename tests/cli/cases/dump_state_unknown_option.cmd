@STRATA@ dump-state --pretty @FIXTURES@/store
