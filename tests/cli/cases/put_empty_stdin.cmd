cp -r @FIXTURES@/store store && @STRATA@ put store notes 12 - </dev/null && @STRATA@ context store notes:12
