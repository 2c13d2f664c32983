cp -r @FIXTURES@/store store && @STRATA@ put store 9 0 - --create notes </dev/null
