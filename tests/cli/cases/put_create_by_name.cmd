cp -r @FIXTURES@/store store && @STRATA@ put store fresh 0 - --create fresh </dev/null
