cp -r @FIXTURES@/store store && @STRATA@ put store docs intro - </dev/null
