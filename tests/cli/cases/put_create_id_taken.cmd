cp -r @FIXTURES@/store store && @STRATA@ put store 1 0 - --create other </dev/null
