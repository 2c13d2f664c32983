@STRATA@ dump-state
