@STRATA@ ls --json
